"""Training a cross-encoder for the top of a search (the ``cross`` task).

The search encoder compares a query's vector with a chunk's; a cross-encoder reads the two
together (``codemlm.search_cross``) and is trained as a reranker: each documented definition's
first docstring paragraph is a query, and the model must pick the definition (documentation cut
out) from a group of candidates:

- ``lexical_negatives`` codes of other files that BM25 over identifier terms ranks highest for
  the query (``training.hard_negatives``; a fresh draw from the ``mined_negatives`` best each
  time the pair is seen): what the first stage puts beside the answer at the top of a search;
- ``batch_negatives`` answers of other queries in the batch (and more of them where a query has
  fewer mined negatives), so the group size is fixed.

The loss is cross-entropy over the group (the answer is the right class). The pairs come from
the contrastive stage's loader (``training.contrastive.load_pairs``, doc pairs only: the data
directory, ``extra_repos``, ``exclude_search_validation``). Validation: each validation query
against its answer and ``validation_candidates - 1`` BM25-mined codes of the validation files;
MRR and recall@1 of the answer in that group (``val/mrr``). Starts from ``init_from`` (a model
directory: the search encoder is a good start, it already matches docstrings to code); the head
starts at zero (or at ``init_from``'s own head, continuing a cross-encoder). The exported model
directory carries the head in its summary (``cross_head``).

``task_options`` (all optional): ``repos``, ``extra_repos``, ``skip_missing_packages``,
``exclude_search_validation``, ``max_validation_pairs`` (1000), ``validation_fraction`` (0.1),
``max_query_tokens`` (48), ``max_code_tokens`` (128), ``lexical_negatives`` (3),
``mined_negatives`` (8), ``batch_negatives`` (4), ``score_scale`` (20.0: the head's output is
multiplied by it, so a zero-initialised head on unit vectors can reach confident logits),
``validation_candidates`` (16), ``residual_to`` (null).

**Residual training** (``residual_to``: a search encoder's model directory). At query time the
cross score is *added* to the search encoder's cosine, so what it has to learn is what that
cosine gets wrong. With ``residual_to`` each group's logits are ``bi_scale x cosine + score``:
the cosine of the frozen search encoder (query and code each read as search reads them, every
distinct text embedded once before training) and a learnable ``bi_scale`` starting at the
encoder's own inverse temperature. The zero head starts exactly at the search encoder's
ranking, and training moves it only where the pair read together tells more.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningDataModule
from torch.utils.data import DataLoader

from codemlm.config import ModelConfig
from codemlm.errors import ConfigError
from codemlm.model import CodeEncoder
from codemlm.search_cross import encode_pairs
from codemlm.tokenizer import CodeTokenizer
from training.config import OptimConfig, TrainConfig
from training.contrastive import ContrastiveOptions, Pair, load_pairs, options_from_dict
from training.mlm import AdamWModule, parameter_groups

__all__ = ["CrossEncoderModule", "CrossOptions", "Group", "group_metrics", "train_cross"]


@dataclass(frozen=True)
class CrossOptions:
    repos: tuple[str, ...] = ()
    extra_repos: tuple[str, ...] = ()
    skip_missing_packages: bool = False
    exclude_search_validation: bool = False
    max_validation_pairs: int = 1000
    validation_fraction: float = 0.1
    max_query_tokens: int = 48
    max_code_tokens: int = 128
    lexical_negatives: int = 3
    mined_negatives: int = 8
    batch_negatives: int = 4
    score_scale: float = 20.0
    validation_candidates: int = 16
    # A search encoder's model directory: the cross score is trained as a correction to its cosine
    # (the group's logits are bi_scale x cosine + cross score), since at query time it is added to it.
    residual_to: str | None = None

    def __post_init__(self) -> None:
        if self.max_query_tokens < 3 or self.max_code_tokens < 3:
            raise ConfigError("task_options.max_query_tokens and max_code_tokens must be >= 3")
        if self.lexical_negatives < 0 or self.batch_negatives < 0 or self.lexical_negatives + self.batch_negatives < 1:
            raise ConfigError("task_options.lexical_negatives and batch_negatives must be >= 0, and not both 0")
        if self.mined_negatives < self.lexical_negatives:
            raise ConfigError("task_options.mined_negatives must be >= lexical_negatives")
        if self.score_scale <= 0:
            raise ConfigError("task_options.score_scale must be > 0")
        if self.validation_candidates < 2 or self.max_validation_pairs < 2:
            raise ConfigError("task_options.validation_candidates and max_validation_pairs must be >= 2")

    @classmethod
    def from_task_options(cls, options: dict[str, Any]) -> CrossOptions:
        return options_from_dict(cls, options, "cross")

    def pair_options(self) -> ContrastiveOptions:
        """The contrastive loader's options for the same pairs (documentation pairs only)."""
        return ContrastiveOptions(
            repos=self.repos, extra_repos=self.extra_repos, skip_missing_packages=self.skip_missing_packages,
            code_views=False, max_validation_pairs=self.max_validation_pairs,
            validation_fraction=self.validation_fraction, exclude_search_validation=self.exclude_search_validation,
        )


@dataclass(frozen=True)
class Group:
    """A validation query with its candidates; the answer is ``codes[0]``."""

    query: str
    codes: tuple[str, ...]


def _mined(pairs: Sequence[Pair], count: int) -> list[list[int]]:
    from training.hard_negatives import mine_hard_negative_lists

    return mine_hard_negative_lists([p.query for p in pairs], [p.code for p in pairs], [p.group for p in pairs],
                                    count=count)


def validation_groups(pairs: Sequence[Pair], size: int, seed: int = 0) -> list[Group]:
    """Each pair's query, its code first, then BM25's best other codes of the validation files,
    topped up with random ones to ``size`` (fewer only when there are not that many codes)."""
    rng = random.Random(seed)
    mined = _mined(pairs, size - 1)
    groups = []
    for i, p in enumerate(pairs):
        codes = [p.code, *(pairs[j].code for j in mined[i])]
        others = [q.code for q in pairs if q.code not in codes and q.group != p.group]
        rng.shuffle(others)
        codes += list(dict.fromkeys(others))[: size - len(codes)]
        groups.append(Group(p.query, tuple(codes)))
    return groups


class _TrainCollate:
    """A batch of pairs -> every (query, candidate) sequence, ``1 + lexical + batch`` per query."""

    def __init__(self, pairs: Sequence[Pair], mined: Sequence[Sequence[int]], tokenizer: CodeTokenizer,
                 options: CrossOptions, seed: int, bi: BiCosines | None = None) -> None:
        self.pairs, self.mined, self.tokenizer, self.options = pairs, mined, tokenizer, options
        self.rng = random.Random(seed)
        self.size = 1 + options.lexical_negatives + options.batch_negatives
        self.bi = bi

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        queries, codes = [], []
        batch_codes = [self.pairs[i].code for i in indices]
        for i in indices:
            pair = self.pairs[i]
            mined = list(self.mined[i])
            self.rng.shuffle(mined)
            group = [pair.code, *(self.pairs[j].code for j in mined[: self.options.lexical_negatives])]
            fill = [c for c in batch_codes if c not in group]
            self.rng.shuffle(fill)
            group += fill[: self.size - len(group)]
            while len(group) < self.size:  # a tiny batch: repeat the last candidate
                group.append(group[-1])
            queries += [pair.query] * self.size
            codes += group
        ids, mask = encode_pairs(self.tokenizer, queries, codes, self.options.max_query_tokens,
                                 self.options.max_code_tokens)
        batch = {"ids": ids, "mask": mask}
        if self.bi is not None:
            batch["bi"] = self.bi.cosines(queries, codes)
        return batch


class _GroupCollate:
    def __init__(self, tokenizer: CodeTokenizer, options: CrossOptions, bi: BiCosines | None = None) -> None:
        self.tokenizer, self.options, self.bi = tokenizer, options, bi

    def __call__(self, groups: list[Group]) -> dict[str, torch.Tensor]:
        queries = [g.query for g in groups for _ in g.codes]
        codes = [c for g in groups for c in g.codes]
        ids, mask = encode_pairs(self.tokenizer, queries, codes, self.options.max_query_tokens,
                                 self.options.max_code_tokens)
        batch = {"ids": ids, "mask": mask, "sizes": torch.tensor([len(g.codes) for g in groups])}
        if self.bi is not None:
            batch["bi"] = self.bi.cosines(queries, codes)
        return batch


class BiCosines:
    """A frozen search encoder's unit vectors of every query and code the run will show (each
    distinct text embedded once, as search reads it), and their cosines by text."""

    def __init__(self, model_dir: str, queries: Sequence[str], codes: Sequence[str]) -> None:
        from codemlm.checkpoint import load_model_dir
        from codemlm.search_rerank import RerankSettings
        from training.contrastive import embed_texts

        loaded = load_model_dir(model_dir)
        reads = RerankSettings.from_summary(loaded.summary).max_tokens
        temperature = loaded.summary.get("temperature")
        self.scale = 1.0 / float(temperature) if isinstance(temperature, (int, float)) and temperature > 0 else 20.0
        self.queries = {t: i for i, t in enumerate(dict.fromkeys(queries))}
        self.codes = {t: i for i, t in enumerate(dict.fromkeys(codes))}
        self.query_vectors = torch.from_numpy(embed_texts(loaded.model, loaded.tokenizer, list(self.queries), reads))
        self.code_vectors = torch.from_numpy(embed_texts(loaded.model, loaded.tokenizer, list(self.codes), reads))

    def cosines(self, queries: Sequence[str], codes: Sequence[str]) -> torch.Tensor:
        """Float[N]: the cosine of each (queries[i], codes[i])."""
        q = self.query_vectors[[self.queries[t] for t in queries]]
        c = self.code_vectors[[self.codes[t] for t in codes]]
        return (q * c).sum(dim=1)


class CrossDataModule(LightningDataModule):
    def __init__(self, train: Sequence[Pair], mined: Sequence[Sequence[int]], validation: Sequence[Group],
                 tokenizer: CodeTokenizer, options: CrossOptions, *, batch_size: int, seed: int = 0,
                 bi: BiCosines | None = None) -> None:
        super().__init__()
        self.train_collate = _TrainCollate(train, mined, tokenizer, options, seed, bi)
        self.group_collate = _GroupCollate(tokenizer, options, bi)
        self.n_train, self.validation = len(train), list(validation)
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(range(self.n_train), batch_size=self.batch_size, shuffle=True, generator=generator,  # type: ignore[arg-type]
                          collate_fn=self.train_collate, drop_last=self.n_train >= self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.validation, batch_size=8, collate_fn=self.group_collate)  # type: ignore[arg-type]


def group_metrics(scores: Sequence[torch.Tensor]) -> dict[str, float]:
    """MRR and recall@1 of candidate 0 in each group's scores (ties count against it)."""
    if not scores:
        return {}
    ranks = torch.tensor([float((s[1:] >= s[0]).sum()) + 1.0 for s in scores])
    return {"mrr": float((1.0 / ranks).mean()), "recall_at_1": float((ranks == 1).float().mean())}


class CrossEncoderModule(AdamWModule):
    def __init__(self, model_config: ModelConfig, optim: OptimConfig, options: CrossOptions, *,
                 bi_scale: float = 20.0) -> None:
        super().__init__()
        self.save_hyperparameters({"model": asdict(model_config), "optim": asdict(optim), "options": asdict(options)})
        self.optim, self.options = optim, options
        self.encoder = CodeEncoder(model_config)
        self.head = torch.nn.Linear(model_config.dim, 1, bias=False)  # a bias would shift every score alike
        torch.nn.init.zeros_(self.head.weight)
        # log(bi_scale): how much the frozen search encoder's cosine counts beside the score (residual runs)
        self.log_bi_scale = torch.nn.Parameter(torch.tensor(math.log(bi_scale)))
        self._val_scores: list[torch.Tensor] = []

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Float[N]: the score of each sequence, plus bi_scale x the search encoder's cosine when
        the batch carries it (residual training)."""
        score = self.score(batch["ids"], batch["mask"])
        if "bi" in batch:
            score = score + self.log_bi_scale.exp() * batch["bi"].to(score.dtype)
        return score

    def score(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Long[N, T], Bool[N, T] -> Float[N]: the relevance of each (query, code) sequence."""
        return self.options.score_scale * self.head(self.encoder.embed(ids, mask)).squeeze(-1)

    def head_vector(self) -> list[float]:
        """The head with its scale folded in: what ``codemlm.search_cross`` multiplies by."""
        return [round(float(x), 6) for x in (self.options.score_scale * self.head.weight.detach().float()[0]).tolist()]

    def configure_optimizers(self) -> Any:
        opt = self.optim
        groups = parameter_groups(self.encoder, opt.weight_decay)
        groups.append({"params": [*self.head.parameters(), self.log_bi_scale], "weight_decay": 0.0})
        return self.adamw_with_schedule(groups)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        size = 1 + self.options.lexical_negatives + self.options.batch_negatives
        logits = self.logits(batch).view(-1, size)  # [B, G]; the answer is column 0
        loss = F.cross_entropy(logits.float(), torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/acc", (logits.argmax(dim=1) == 0).float().mean())
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_scores = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        scores = self.logits(batch).float().cpu()
        self._val_scores += list(torch.split(scores, batch["sizes"].tolist()))

    def on_validation_epoch_end(self) -> None:
        metrics = group_metrics(self._val_scores)
        if metrics:
            self.log("val/mrr", metrics["mrr"], prog_bar=True, sync_dist=False)
            self.log("val/recall_at_1", metrics["recall_at_1"], sync_dist=False)


def train_cross(config: TrainConfig, *, command: Sequence[str] | None = None, callbacks: Sequence[Callback] = ()) -> Any:
    """The ``cross`` task of ``training.run``; returns a :class:`training.run.RunResult`."""
    import sys

    from lightning.pytorch import seed_everything

    from codemlm.checkpoint import load_model_dir
    from training import run as run_lib

    options = CrossOptions.from_task_options(config.task_options)
    if not config.init_from:
        raise ConfigError("the cross task needs init_from (a model directory: its tokenizer and encoder)")
    loaded = load_model_dir(config.init_from)
    train_pairs, val_pairs, origin = load_pairs(config, options.pair_options())
    if len(val_pairs) < 2:
        raise ConfigError(f"too few validation pairs ({len(val_pairs)}) to measure a cross-encoder")
    began = time.perf_counter()
    mined = _mined(train_pairs, options.mined_negatives)
    groups = validation_groups(val_pairs, options.validation_candidates, config.trainer.seed)
    mining = {"pairs_with_negatives": sum(bool(m) for m in mined), "seconds": round(time.perf_counter() - began, 1)}
    print(f"cross: {len(train_pairs)} training pairs, {mining['pairs_with_negatives']} with mined negatives, "
          f"{len(groups)} validation groups ({mining['seconds']} s)", file=sys.stderr)

    bi = None
    if options.residual_to:
        began = time.perf_counter()
        bi = BiCosines(options.residual_to, [p.query for p in train_pairs] + [g.query for g in groups],
                       [p.code for p in train_pairs] + [c for g in groups for c in g.codes])
        print(f"cross: {options.residual_to}'s vectors of {len(bi.queries)} queries and {len(bi.codes)} codes "
              f"({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    # init_from read apart (its own cosine) is the floor; the residual encoder, usually the same
    # directory, has embedded the validation groups already.
    reader = bi if bi is not None and options.residual_to == config.init_from else \
        BiCosines(config.init_from, [g.query for g in groups], [c for g in groups for c in g.codes])
    floor = _group_cosines(reader, groups)
    print(f"cross: init_from as a bi-encoder (cosine) on the validation groups: {floor}", file=sys.stderr)

    seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = CrossEncoderModule(loaded.config, config.optim, options, bi_scale=bi.scale if bi is not None else 20.0)
    module.encoder.load_state_dict(loaded.model.state_dict())
    if "cross_head" in loaded.summary:  # continuing a cross-encoder: its head too, not a fresh zero
        from codemlm.search_cross import read_cross_head

        head = read_cross_head(loaded.summary, loaded.config.dim) / options.score_scale
        module.head.weight.data.copy_(torch.from_numpy(head)[None, :])
    datamodule = CrossDataModule(train_pairs, mined, groups, loaded.tokenizer, options,
                                 batch_size=config.optim.batch_size, seed=config.trainer.seed, bi=bi)
    trainer = run_lib.build_trainer(config, callbacks=list(callbacks))
    ckpt_path = run_lib.resolve_resume(config)
    if ckpt_path is not None:
        run_lib.check_resume_checkpoint(ckpt_path, module)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    seconds = time.perf_counter() - started
    run_lib.save_final_checkpoint(trainer, config)
    after = _group_scores(module, datamodule)

    metrics = run_lib.final_metrics(trainer)
    metrics.update({f"final/{k}": round(v, 4) for k, v in after.items()})
    summary = {
        "task": "cross",
        "command": list(command) if command is not None else None,
        "pairs_from": origin,
        "train_pairs": len(train_pairs),
        "validation_groups": len(groups),
        "init_from": config.init_from,
        "mining": mining,
        "steps": int(trainer.global_step),
        "seconds": round(seconds, 2),
        "validation_after": {k: round(v, 4) for k, v in after.items()},
        "validation_init_bi_encoder": {k: round(v, 4) for k, v in floor.items()},
        "residual_to": options.residual_to,
        "bi_scale": round(float(module.log_bi_scale.detach().exp()), 4) if bi is not None else None,
        "cross_head": {"weight": module.head_vector()},
        "cross_rerank": {"max_query_tokens": options.max_query_tokens, "max_code_tokens": options.max_code_tokens},
        "metrics": metrics,
        "config": config.to_dict(),
    }
    model_dir = run_lib.export_encoder(trainer, module.encoder, loaded.config, loaded.tokenizer, config, summary)
    return run_lib.RunResult(
        model_dir=model_dir, checkpoint_dir=run_lib.checkpoint_dir(config), global_step=int(trainer.global_step),
        tokens=0, seconds=seconds, metrics=metrics, summary=summary,
    )


def _group_cosines(bi: BiCosines, groups: Sequence[Group]) -> dict[str, float]:
    """The validation groups ranked by a search encoder's cosine of query and code read apart:
    its own answer, which a cross-encoder must beat."""
    return group_metrics([bi.cosines([g.query] * len(g.codes), g.codes) for g in groups])


@torch.no_grad()
def _group_scores(module: CrossEncoderModule, datamodule: CrossDataModule) -> dict[str, float]:
    """Validation metrics outside the Trainer, after training."""
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    scores: list[torch.Tensor] = []
    for batch in datamodule.val_dataloader():
        values = module.logits({k: v.to(device) for k, v in batch.items()}).float().cpu()
        scores += list(torch.split(values, batch["sizes"].tolist()))
    module.train(was_training)
    return group_metrics(scores)
