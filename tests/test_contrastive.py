"""Contrastive training for search: pairs, loss, metrics, and a few real training steps."""

from __future__ import annotations

import itertools
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import torch
from _random_start import STDLIB_PACKAGES, random_start

from training.config import config_from_dict
from training.contrastive import (
    ContrastiveOptions,
    SameFileRunSampler,
    embed_texts,
    info_nce,
    pairs_from_files,
    retrieval_metrics,
)
from training.run import run

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SOURCE = '''
def load_settings(path):
    """Read the settings file.

    Longer explanation that should not be part of the query.
    """
    with open(path) as handle:
        return handle.read()


def untested(x):
    return x
'''


def test_pairs_cut_the_doc_and_dedupe() -> None:
    pairs = pairs_from_files([(SOURCE, "python"), (SOURCE, "python")])
    docs = [p for p in pairs if p.kind == "doc"]
    assert len(docs) == 1  # the second, identical file adds nothing
    assert docs[0].query == "Read the settings file."
    assert "Read the settings" not in docs[0].code and "handle.read()" in docs[0].code
    views = [p for p in pairs if p.kind == "code"]
    assert views and views[0].query.startswith("load_settings def load_settings(path):")
    assert "def load_settings" not in views[0].code
    assert pairs_from_files([("not code at all", "cobol")]) == []


def test_code_views_are_capped_relative_to_doc_pairs() -> None:
    from training.contrastive import Pair, _cap_code_views

    pairs = [Pair(f"q{i}", f"c{i}", i, "doc" if i % 5 == 0 else "code") for i in range(50)]
    capped = _cap_code_views(pairs, 1.0)
    assert sum(p.kind == "doc" for p in capped) == 10 and sum(p.kind == "code" for p in capped) == 10
    assert [p for p in capped if p.kind == "doc"] == [p for p in pairs if p.kind == "doc"]
    assert _cap_code_views(pairs, 10.0) == pairs and all(p.kind == "doc" for p in _cap_code_views(pairs, 0.0))


def test_info_nce_and_retrieval_metrics() -> None:
    eye = torch.eye(4)
    perfect = info_nce(eye, eye, torch.tensor(20.0))
    shuffled = info_nce(eye, eye[[1, 0, 3, 2]], torch.tensor(20.0))
    assert perfect < 1e-3 < shuffled
    # a duplicate code in the batch is not a negative
    dup = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert info_nce(dup, dup, torch.tensor(20.0), torch.tensor([7, 7])) < 1e-3
    # mined negatives: extra columns for the queries; one equal to a row's positive is masked
    far, near = torch.tensor([[-0.5, -0.5, -0.5, -0.5]]), torch.tensor([[0.8, 0.6, 0.0, 0.0]])
    keys = torch.arange(4)
    assert info_nce(eye, eye, torch.tensor(20.0), keys, far, torch.tensor([9])) < \
        info_nce(eye, eye, torch.tensor(20.0), keys, near, torch.tensor([9]))
    same = info_nce(eye, eye, torch.tensor(20.0), keys, eye[:1], torch.tensor([0]))
    assert same < info_nce(eye, eye, torch.tensor(20.0), keys, eye[:1], torch.tensor([9]))
    metrics = retrieval_metrics(eye, eye[[0, 1, 3, 2]])
    assert metrics["recall_at_1"] == 0.5 and metrics["recall_at_10"] == 1.0
    assert metrics["mrr"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)


def test_same_file_runs_sampler_keeps_files_adjacent_and_shards() -> None:
    groups = [0] * 8 + [1] * 3 + [2] * 5
    order = list(SameFileRunSampler(groups, run=4, seed=0))
    assert sorted(order) == list(range(16))
    # five runs (4+4, 3, 4+1 pairs of files 0, 1, 2) -> at most four changes of file in the order
    changes = sum(groups[a] != groups[b] for a, b in itertools.pairwise(order))
    assert changes <= 4
    ranks = [list(SameFileRunSampler(groups, run=4, seed=0, rank=r, world=2)) for r in range(2)]
    assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) == len(ranks[1]) == 8
    with pytest.raises(Exception, match="unknown task_options"):
        ContrastiveOptions.from_task_options({"temprature": 0.1})
    with pytest.raises(Exception, match="hard_negative_miner"):
        ContrastiveOptions.from_task_options({"hard_negative_miner": "bm52"})


def _few_steps(init: Path, out: Path, optim: dict[str, object], task_options: dict[str, object]) -> Any:
    """A contrastive run config from ``init`` on the CPU: no checkpoints, no mid-run validation."""
    return config_from_dict(
        {
            "task": "contrastive",
            "init_from": str(init),
            "optim": {"schedule": "constant", **optim},
            "trainer": {
                "accelerator": "cpu", "devices": 1, "val_check_interval": 0, "checkpoint_every": 0,
                "progress": False, "out_dir": str(out), "log_every": 1,
            },
            "task_options": task_options,
        }
    )


@pytest.mark.parametrize("miner", ["bm25", "encoder", "encoder+bm25"])
def test_a_few_steps_through_the_task_registry_fit_the_training_pairs(tmp_path: Path, miner: str) -> None:
    repos = STDLIB_PACKAGES
    start = random_start(tmp_path / "mlm")

    config = _few_steps(
        start, tmp_path / "run", {"lr": 3e-3, "warmup_steps": 5, "max_steps": 25, "batch_size": 16},
        {"repos": [str(r) for r in repos], "max_query_tokens": 24, "max_code_tokens": 48, "validation_fraction": 0.3,
         "max_validation_pairs": 200, "mlm_weight": 0.1, "hard_negatives": True, "hard_negative_miner": miner},
    )
    result = run(config)  # the "contrastive" task of training.run
    summary = result.summary
    assert summary["train_pairs"] > 100 and summary["validation_pairs"] >= 20
    assert 0 < summary["hard_negatives"]["pairs"] <= summary["train_pairs_doc"]
    assert summary["hard_negatives"]["miner"] == miner
    # A random-init tiny model fits its training pairs within a few steps; held-out retrieval
    # needs an MLM start and a real corpus, so it is reported (not asserted) here.
    before, after = summary["train_probe_before"], summary["train_probe_after"]
    assert after["mrr"] > before["mrr"] and after["recall_at_10"] > before["recall_at_10"]
    assert set(summary["validation_after"]) == {"recall_at_1", "recall_at_10", "mrr"}
    assert result.model_dir is not None and (result.model_dir / "model.safetensors").is_file()

    from codemlm.checkpoint import load_model_dir
    from codemlm.embedder import ModelEmbedder

    vectors = ModelEmbedder(load_model_dir(result.model_dir)).embed_query(["parse a JSON document"])
    assert vectors.shape == (1, 64) and abs(float((vectors**2).sum()) - 1.0) < 1e-4


def test_pairs_from_a_corpus_data_directory_keep_validation_files_apart(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    from training.contrastive import load_pairs

    # The files/ table of a data directory (INTERFACES.md), written directly: train and validation files.
    def table(paths: list[Path]) -> Dataset:
        texts = [p.read_text(encoding="utf-8") for p in paths]
        return Dataset.from_dict({"repo": ["stdlib"] * len(paths), "path": [p.name for p in paths],
                                  "language": ["python"] * len(paths), "text": texts})

    data = tmp_path / "data"
    train_files = sorted((STDLIB / "logging").glob("*.py"))
    val_files = sorted((STDLIB / "json").glob("*.py"))
    DatasetDict({"train": table(train_files), "validation": table(val_files)}).save_to_disk(str(data / "files"))
    config = config_from_dict({"task": "contrastive", "data": {"dir": str(data)}})
    train, validation, origin = load_pairs(config, ContrastiveOptions())
    assert origin == str(data) and len(train) > 50 and len(validation) >= 5
    assert {p.kind for p in validation} == {"doc"}  # validation measures doc -> code, as search does
    assert not {p.code for p in validation} & {p.code for p in train}
    val_text = "".join(p.read_text(encoding="utf-8") for p in val_files)
    assert all(p.code.splitlines()[0] in val_text for p in validation)  # from the validation files only
    with pytest.raises(Exception, match="no files/ table"):
        load_pairs(config_from_dict({"task": "contrastive", "data": {"dir": str(tmp_path)}}), ContrastiveOptions())


def test_extra_repositories_add_training_pairs_and_never_validation(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    from codemlm.errors import CorpusError
    from training.contrastive import load_pairs

    data = tmp_path / "data"
    paths = sorted((STDLIB / "json").glob("*.py"))
    texts = [p.read_text(encoding="utf-8") for p in paths]
    DatasetDict({"train": Dataset.from_dict({"repo": ["stdlib"] * len(paths), "path": [p.name for p in paths],
                                             "language": ["python"] * len(paths), "text": texts})}
                ).save_to_disk(str(data / "files"))
    config = config_from_dict({"task": "contrastive", "data": {"dir": str(data)}})
    alone, _, _ = load_pairs(config, ContrastiveOptions())
    options = ContrastiveOptions.from_task_options({"extra_repos": str(STDLIB / "logging")})
    assert options.extra_repos == (str(STDLIB / "logging"),)
    train, validation, origin = load_pairs(config, options)
    logging_text = "".join(p.read_text(encoding="utf-8") for p in (STDLIB / "logging").glob("*.py"))
    json_text = "".join(texts)
    assert all(p.code.splitlines()[0] in json_text + logging_text for p in train)
    from_logging = [p for p in train if p.code.splitlines()[0] not in json_text]
    assert len(from_logging) > 20 and len(train) > len(alone)
    assert origin == f"{data} + {STDLIB / 'logging'}" and not validation  # the data directory had no validation split
    with pytest.raises(CorpusError, match="not a directory"):
        load_pairs(config, ContrastiveOptions(extra_repos=(str(tmp_path / "missing"),)))
    # pkg:NAME names an installed package's folder; a held-out or validation library is refused
    by_package, _, origin = load_pairs(config, ContrastiveOptions(extra_repos=("pkg:logging",)))
    assert len(by_package) > len(alone) and origin.endswith("pkg:logging")
    for bad in ("pkg:no_such_package_here", "pkg:sortedcontainers", "pkg:click"):
        with pytest.raises(CorpusError, match=r"no installed package|held-out|validation"):
            load_pairs(config, ContrastiveOptions(extra_repos=(bad,)))
    # skip_missing_packages: a package that is not installed is left out; a held-out one still refused
    skipping, _, origin = load_pairs(config, ContrastiveOptions(extra_repos=("pkg:no_such_package_here", "pkg:logging"),
                                                                skip_missing_packages=True))
    assert len(skipping) == len(by_package) and "no_such_package_here" not in origin
    with pytest.raises(CorpusError, match="held-out"):
        load_pairs(config, ContrastiveOptions(extra_repos=("pkg:toolz",), skip_missing_packages=True))


def test_embed_texts_reads_each_text_as_one_row_would() -> None:
    """Batched by length with padding, each text still gets the vector it gets alone."""
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder
    from codemlm.tokenizer import CodeTokenizer

    texts = [p.read_text(encoding="utf-8") for p in sorted((STDLIB / "json").glob("*.py"))]
    tokenizer = CodeTokenizer.train_from_iterator(texts, vocab_size=600)
    torch.manual_seed(0)
    encoder = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    wanted = ["def load(fp):", "x = 1", "def load(fp):", "class JSONDecoder(object):\n    pass", "y"]
    vectors = embed_texts(encoder, tokenizer, wanted, 16, batch_size=2)
    assert vectors.shape == (5, encoder.config.dim)
    assert encoder.training  # left as it was found
    for i, text in enumerate(wanted):
        alone = embed_texts(encoder, tokenizer, [text], 16)[0]
        assert abs(float(vectors[i] @ alone) - 1.0) < 1e-4
    assert (vectors[0] == vectors[2]).all()


def test_a_continuation_starts_from_the_temperature_its_encoder_learned(tmp_path: Path) -> None:
    from codemlm.checkpoint import load_model_dir, save_model_dir
    from training.contrastive import continued_temperature

    learning = ContrastiveOptions()
    contrastive = {"task": "contrastive", "temperature": 0.03}
    assert continued_temperature(contrastive, learning) == 0.03
    assert continued_temperature({"task": "mlm", "temperature": 0.03}, learning) is None  # not a contrastive run
    assert continued_temperature({"task": "contrastive"}, learning) is None
    assert continued_temperature({"task": "contrastive", "temperature": 2.0}, learning) is None
    assert continued_temperature({"task": "contrastive", "temperature": True}, learning) is None
    assert continued_temperature(contrastive, ContrastiveOptions(learn_temperature=False)) is None

    # A contrastive encoder (its summary says what it learned), continued for two steps at a rate
    # too small to move the temperature far: it starts at 0.03, not at the option's 0.05.
    start = load_model_dir(random_start(tmp_path / "mlm"))
    init = save_model_dir(tmp_path / "contrastive", start.model, start.tokenizer, summary=contrastive)
    config = _few_steps(
        init, tmp_path / "run", {"lr": 1e-6, "warmup_steps": 0, "max_steps": 2, "batch_size": 8},
        {"repos": [str(STDLIB_PACKAGES[0])], "max_query_tokens": 16, "max_code_tokens": 32, "validation_fraction": 0.3,
         "max_validation_pairs": 20, "hard_negatives": False},
    )
    summary = run(config).summary
    assert summary["temperature_from_init"] == 0.03
    assert summary["temperature"] == pytest.approx(0.03, rel=1e-3)
