"""The search encoder's second look: scores, depth, cut, cache, settings and a model without one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_index import HashingEmbedder, write_repo
from test_search import indexed, tiny_model_dir  # noqa: F401  (fixtures: an index, a real tiny encoder)

from codemlm.checkpoint import load_model_dir, save_model_dir
from codemlm.embedder import ModelEmbedder
from codemlm.errors import CheckpointError
from codemlm.eval_search import evaluate_search
from codemlm.index import RepoIndex
from codemlm.search import SearchResult, search
from codemlm.search_rerank import SEARCH_ENCODER_DIR, EncoderReranker, RerankSettings, has_search_encoder

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"


@pytest.fixture(scope="module")
def encoder_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A model directory whose search_encoder/ is a real (randomly initialised) tiny encoder."""
    loaded = load_model_dir(tiny_model_dir)
    root = tmp_path_factory.mktemp("model")
    summary = {"task": "contrastive", "search_rerank": {"weight": 2.0, "depth": 4}}
    save_model_dir(root / SEARCH_ENCODER_DIR, loaded.model, loaded.tokenizer, summary=summary)
    return root


@pytest.fixture
def index(indexed: RepoIndex) -> RepoIndex:  # noqa: F811
    """test_search's index of the small written repository (hashing vectors)."""
    return indexed


def _cli_model(tmp_path: Path, main_model: Path, stages: Path | None = None) -> tuple[Path, Path, list[str]]:
    """A copy of the fixture repository, a model directory (``main_model``, plus the stage
    folders of ``stages``) and the CLI arguments that search the one with the other."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE_REPO, repo)
    model = tmp_path / "model"
    shutil.copytree(main_model, model)
    if stages is not None:
        shutil.copytree(stages, model, dirs_exist_ok=True)
    return repo, model, ["--model", str(model), "--index-path", str(tmp_path / "idx.sqlite"), "--json", "-k", "3"]


def _cosines(encoder_dir: Path, index: RepoIndex, query: str, ids: list[int]) -> np.ndarray:
    """The encoder's cosines computed independently of the reranker."""
    embedder = ModelEmbedder(load_model_dir(encoder_dir / SEARCH_ENCODER_DIR), max_tokens=128)
    rows = index.chunk_rows(ids)
    return embedder.embed_code([rows[i].text for i in ids]) @ embedder.embed_query([query])[0]


def test_settings_come_from_the_encoder_and_bad_ones_are_refused(encoder_dir: Path) -> None:
    reranker = EncoderReranker.from_model_dir(encoder_dir)
    assert reranker.settings == RerankSettings(weight=2.0, depth=4)
    assert has_search_encoder(encoder_dir)
    for bad in ({"weight": -1}, {"depth": 0}, {"weight": "heavy"}, ["not", "an", "object"]):
        with pytest.raises(CheckpointError):
            RerankSettings.from_summary({"search_rerank": bad})


def test_a_model_without_a_search_encoder_is_a_clean_error(tmp_path: Path) -> None:
    assert not has_search_encoder(tmp_path)
    with pytest.raises(CheckpointError, match="no search encoder"):
        EncoderReranker.from_model_dir(tmp_path)
    (tmp_path / SEARCH_ENCODER_DIR).mkdir()
    (tmp_path / SEARCH_ENCODER_DIR / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError):
        EncoderReranker.from_model_dir(tmp_path)


def test_the_top_is_rescored_by_the_cosine_and_the_rest_keeps_its_order(encoder_dir: Path, index: RepoIndex) -> None:
    query = "area of a shape"
    plain = search(index, query, k=20, mode="dense")
    assert len(plain) > 4  # deeper than the encoder reads
    reranker = EncoderReranker.from_model_dir(encoder_dir)
    reranked = reranker.rerank(index, query, plain, k=20)
    head_ids = [r.chunk_id for r in plain[:4]]
    cosines = _cosines(encoder_dir, index, query, head_ids)
    expected = {cid: plain[i].score + 2.0 * cosines[i] for i, cid in enumerate(head_ids)}
    assert [r.chunk_id for r in reranked[:4]] == sorted(head_ids, key=lambda cid: -expected[cid])
    for result in reranked[:4]:
        assert result.score == pytest.approx(expected[result.chunk_id], abs=1e-4)
    assert reranked[4:] == plain[4:]  # below the depth nothing moves
    assert len(reranker.rerank(index, query, plain, k=3)) == 3


def test_weight_zero_and_a_single_result_change_nothing(encoder_dir: Path, index: RepoIndex) -> None:
    loaded = load_model_dir(encoder_dir / SEARCH_ENCODER_DIR)
    plain = search(index, "slug", k=10, mode="lexical")
    assert EncoderReranker(loaded, RerankSettings(weight=0.0, depth=30)).rerank(index, "slug", plain, k=10) == plain
    one = plain[:1]
    assert EncoderReranker(loaded, RerankSettings(weight=5.0)).rerank(index, "slug", one, k=10) == one


class CountingEmbedder:
    """The reranker's embedder, passing through, counting the code texts it is asked to embed."""

    def __init__(self, inner: ModelEmbedder) -> None:
        self.inner = inner
        self.code_texts: list[str] = []

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_query(texts)

    def embed_code(self, texts: list[str]) -> np.ndarray:
        self.code_texts.extend(texts)
        return self.inner.embed_code(texts)


def test_search_reads_the_depth_and_cuts_to_k_and_chunks_are_embedded_once(encoder_dir: Path, index: RepoIndex) -> None:
    reranker = EncoderReranker.from_model_dir(encoder_dir)
    counting = CountingEmbedder(reranker._embedder)
    reranker._embedder = counting  # type: ignore[assignment]
    results = reranker.search(index, "area", k=2, mode="dense")
    assert len(results) == 2
    assert len(counting.code_texts) == 4  # the depth, each chunk once
    assert reranker.search(index, "area", k=2, mode="dense") == results
    assert len(counting.code_texts) == 4  # the same chunks again: all from the cache
    reranker.cosines("area", ["def twice(): pass", "def twice(): pass"])
    assert counting.code_texts[4:] == ["def twice(): pass"]  # a text repeated in one call: embedded once


def test_evaluation_with_the_reranker_says_so(encoder_dir: Path, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"id": "1", "query": "area of a circle", "path": "pkg/geometry.py", "line": 5}\n', encoding="utf-8")
    report = evaluate_search(repo, cases, mode="lexical", embedder=HashingEmbedder(dim=64),
                             reranker=EncoderReranker.from_model_dir(encoder_dir))
    assert report["encoder_rerank"] == {"weight": 2.0, "depth": 4}
    assert report["cases"] == 1 and 0.0 <= report["mrr"] <= 1.0


def test_the_chosen_setting_is_the_best_and_the_lightest_on_a_tie() -> None:
    from training.search_encoder import choose

    grid = {(0.0, 20): 0.40, (0.0, 30): 0.40, (2.0, 20): 0.45, (2.0, 30): 0.45, (4.0, 30): 0.45, (6.0, 50): 0.44}
    assert choose(grid) == ((2.0, 20), 0.45, 0.40)
    assert choose({(0.0, 30): 0.5, (3.0, 30): 0.49}) == ((0.0, 30), 0.5, 0.5)  # weight 0 wins: install nothing


def test_install_writes_a_loadable_float16_encoder_with_its_settings(encoder_dir: Path, tmp_path: Path) -> None:
    from training.search_encoder import install

    target = tmp_path / "model"
    install(encoder_dir / SEARCH_ENCODER_DIR, target, RerankSettings(weight=3.0, depth=30), {"mrr": 0.5})
    reranker = EncoderReranker.from_model_dir(target)
    assert reranker.settings == RerankSettings(weight=3.0, depth=30)
    assert load_model_dir(target / SEARCH_ENCODER_DIR).summary["search_rerank_validation"] == {"mrr": 0.5}


def test_cli_rerank_uses_the_models_search_encoder_and_refuses_a_model_without_one(
    encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from codemlm.cli import main

    repo, model, common = _cli_model(tmp_path, encoder_dir / SEARCH_ENCODER_DIR)  # the main model: the tiny encoder
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 1  # no search_encoder/
    assert "--rerank needs a model with a search encoder" in capsys.readouterr().err
    shutil.copytree(encoder_dir / SEARCH_ENCODER_DIR, model / SEARCH_ENCODER_DIR)
    assert main(["search", "polygon area", str(repo), *common]) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 0
    reranked = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]
    assert len(reranked) == len(plain) == 3
    assert [r["score"] for r in reranked] != [r["score"] for r in plain]  # the encoder's cosine was added


def test_refreshing_the_card_for_a_new_search_encoder_keeps_the_weights_and_the_rest(
    encoder_dir: Path, tiny_model_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    import hashlib
    import subprocess
    import sys

    from training.search_encoder import install

    root = Path(__file__).resolve().parents[1]
    loaded = load_model_dir(tiny_model_dir)
    shipped = tmp_path / "shipped"
    kept = {"heldout_mlm": {"accuracy": 0.5}, "infill_heldout": {"overall": {"em_at_1": 0.25, "em_at_5": 0.4}},
            "search_heldout": {"mrr": 0.1}}
    summary = {"cumulative": {"tokens": 2_000_000, "steps": 10, "cpu_hours": 0.1}, "phases": [{"run": "runs/x"}],
               "metrics": kept}
    save_model_dir(shipped, loaded.model, loaded.tokenizer, summary=summary, dtype="float16")
    install(encoder_dir / SEARCH_ENCODER_DIR, shipped, RerankSettings(weight=5.0, depth=40), {"mrr": 0.6})
    weights = hashlib.sha256((shipped / "model.safetensors").read_bytes()).hexdigest()
    script = [sys.executable, str(root / "scripts/export_default_model.py")]
    done = subprocess.run([*script, "--refresh-search", str(shipped), "--search-repo", str(tmp_path / "absent"),
                           "--search-note", "continued twice"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256((shipped / "model.safetensors").read_bytes()).hexdigest() == weights
    after = load_model_dir(shipped).summary
    assert after["search_encoder"]["rerank"] == {"weight": 5.0, "depth": 40, "max_tokens": 128}
    assert after["search_encoder"]["note"] == "continued twice"
    # no held-out repository here: the stale search figures go, the others stay
    assert after["metrics"] == {k: v for k, v in kept.items() if k != "search_heldout"}
    assert after["cumulative"] == summary["cumulative"] and after["phases"] == summary["phases"]
    card = (shipped / "MODEL_CARD.md").read_text()
    assert card.startswith("> **2.0 M training tokens, 10 steps") and "continued twice" in card
    refused = subprocess.run([*script, "--refresh-search", str(tmp_path / "absent")], capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and "is not a model directory" in refused.stderr


def _stage_scores(index: RepoIndex, top: list[SearchResult], weight: float,
                  score: Callable[[list[str]], np.ndarray]) -> dict[int, float]:
    """What one rerank stage should give ``top``: each chunk id's score plus ``weight`` times the
    stage's own score of its indexed text, computed here from the stage's public API."""
    rows = index.chunk_rows([r.chunk_id for r in top])
    scores = score([rows[r.chunk_id].text for r in top])
    return {r.chunk_id: r.score + weight * float(s) for r, s in zip(top, scores, strict=True)}


@pytest.fixture(scope="module")
def cross_dir(encoder_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """``encoder_dir`` plus a search_cross/: the tiny encoder with a random head (a real scorer)."""
    import shutil

    from codemlm.search_cross import SEARCH_CROSS_DIR

    loaded = load_model_dir(tiny_model_dir)
    root = tmp_path_factory.mktemp("with-cross")
    shutil.copytree(encoder_dir / SEARCH_ENCODER_DIR, root / SEARCH_ENCODER_DIR)
    head = np.random.default_rng(0).normal(size=loaded.config.dim).round(4).tolist()
    summary = {"task": "cross", "cross_head": {"weight": head}, "cross_rerank": {"weight": 1.5, "depth": 3}}
    save_model_dir(root / SEARCH_CROSS_DIR, loaded.model, loaded.tokenizer, summary=summary)
    return root


def test_a_shipped_cross_encoder_rescores_the_top_of_the_encoders_order_last(
    encoder_dir: Path, cross_dir: Path, index: RepoIndex
) -> None:
    from codemlm.search_cross import CrossScorer

    query = "area of a shape"
    plain = search(index, query, k=20, mode="dense")
    by_encoder = EncoderReranker.from_model_dir(encoder_dir).rerank(index, query, plain, k=20)
    reranker = EncoderReranker.from_model_dir(cross_dir)
    assert reranker.cross is not None and reranker.cross.settings.depth == 3
    final = reranker.rerank(index, query, plain, k=20)
    cross = CrossScorer.from_model_dir(cross_dir)
    expected = _stage_scores(index, by_encoder[:3], 1.5, lambda texts: cross.scores(query, texts))
    assert [r.chunk_id for r in final[:3]] == sorted(expected, key=lambda cid: -expected[cid])
    assert [r.score for r in final[:3]] == pytest.approx(sorted(expected.values(), reverse=True), abs=1e-4)
    assert final[3:] == by_encoder[3:]  # below the cross-encoder's depth, the encoder's order stands


def test_install_writes_a_float16_cross_encoder_with_the_chosen_settings(cross_dir: Path, tmp_path: Path) -> None:
    from codemlm.search_cross import SEARCH_CROSS_DIR, CrossScorer, CrossSettings
    from training.search_cross import install

    path = install(cross_dir / SEARCH_CROSS_DIR, tmp_path, 0.25, 5, {"mrr": 0.5})
    assert path == tmp_path / SEARCH_CROSS_DIR
    scorer = CrossScorer.from_model_dir(tmp_path)
    assert scorer.settings == CrossSettings(weight=0.25, depth=5)
    assert scorer.loaded.summary["cross_rerank_validation"] == {"mrr": 0.5}
    original = CrossScorer.from_model_dir(cross_dir).scores("polygon area", ["def area(p):\n    return 0"])
    assert scorer.scores("polygon area", ["def area(p):\n    return 0"]) == pytest.approx(original, rel=0.02, abs=0.02)


def test_cli_rerank_with_a_broken_cross_encoder_is_one_line_and_a_working_one_is_used(
    cross_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    from codemlm.cli import main
    from codemlm.search_cross import SEARCH_CROSS_DIR

    repo, model, common = _cli_model(tmp_path, cross_dir / SEARCH_ENCODER_DIR, cross_dir)  # + encoder and cross
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]) == 3
    config_file = model / SEARCH_CROSS_DIR / "config.json"
    data = json.loads(config_file.read_text())
    data["summary"]["cross_head"] = {"weight": [1.0, 2.0]}
    config_file.write_text(json.dumps(data))
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "cross_head.weight" in errors[0]


def test_choosing_a_cross_encoder_for_a_model_without_a_search_encoder_is_one_line(
    cross_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codemlm.search_cross import SEARCH_CROSS_DIR
    from training.search_cross import main

    assert main(["--cross", str(cross_dir / SEARCH_CROSS_DIR), "--model-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no search encoder" in err[0]


def test_bf16_reads_agree_with_fp32_and_a_bad_precision_is_refused(cross_dir: Path) -> None:
    """Where the CPU has native bf16 the rerank forwards run under autocast: the same order as fp32."""
    from codemlm.search_cross import SEARCH_CROSS_DIR, CrossScorer

    texts = [(FIXTURE_REPO / name).read_text() for name in ("src/geometry/shapes.py", "config/settings.py", "web/api.ts")]
    loaded = load_model_dir(cross_dir / SEARCH_ENCODER_DIR)
    exact, fast = (ModelEmbedder(loaded, max_tokens=128, precision=p) for p in ("fp32", "bf16"))
    assert not exact.autocast_bf16 and fast.autocast_bf16
    agreement = (exact.embed_code(texts) * fast.embed_code(texts)).sum(axis=1)
    assert agreement.min() > 0.99
    cross = load_model_dir(cross_dir / SEARCH_CROSS_DIR)
    scores = [CrossScorer(cross, precision=p).scores("area of a circle", texts) for p in ("fp32", "bf16")]
    assert scores[1] == pytest.approx(scores[0], abs=0.05 * float(np.abs(scores[0]).max()))
    with pytest.raises(ValueError, match="precision"):
        ModelEmbedder(loaded, precision="fp8")
    with pytest.raises(ValueError, match="precision"):
        CrossScorer(cross, precision="half")


@pytest.fixture(scope="module")
def second_dir(cross_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """``cross_dir`` plus a search_encoder2/: a second (differently initialised) tiny encoder reading the top 2."""
    import shutil

    import torch

    from codemlm.model import CodeEncoder
    from codemlm.search_cross import SEARCH_CROSS_DIR
    from codemlm.search_rerank import SEARCH_ENCODER2_DIR

    loaded = load_model_dir(tiny_model_dir)
    root = tmp_path_factory.mktemp("with-second")
    for folder in (SEARCH_ENCODER_DIR, SEARCH_CROSS_DIR):
        shutil.copytree(cross_dir / folder, root / folder)
    torch.manual_seed(7)
    other = CodeEncoder(loaded.config)
    summary = {"task": "contrastive", "search_rerank": {"weight": 5.0, "depth": 2}}
    save_model_dir(root / SEARCH_ENCODER2_DIR, other, loaded.tokenizer, summary=summary)
    return root


def test_a_second_encoder_rereads_the_top_of_the_first_ones_order_before_the_cross_encoder(
    encoder_dir: Path, second_dir: Path, index: RepoIndex
) -> None:
    from codemlm.search_rerank import SEARCH_ENCODER2_DIR

    query = "area of a shape"
    plain = search(index, query, k=20, mode="dense")
    by_first = EncoderReranker.from_model_dir(encoder_dir).rerank(index, query, plain, k=20)
    without_cross = EncoderReranker.from_model_dir(second_dir, cross=False)
    assert without_cross.second is not None and without_cross.cross is None
    assert without_cross.second.settings == RerankSettings(weight=5.0, depth=2)
    final = without_cross.rerank(index, query, plain, k=20)
    second = ModelEmbedder(load_model_dir(second_dir / SEARCH_ENCODER2_DIR), max_tokens=128)
    expected = _stage_scores(index, by_first[:2], 5.0,
                             lambda texts: second.embed_code(texts) @ second.embed_query([query])[0])
    assert [r.chunk_id for r in final[:2]] == sorted(expected, key=lambda cid: -expected[cid])
    assert final[2:] == by_first[2:]  # below the second encoder's depth, the first one's order stands
    everything = EncoderReranker.from_model_dir(second_dir)
    assert everything.second is not None and everything.cross is not None
    assert EncoderReranker.from_model_dir(second_dir, second=False).second is None


def test_a_second_encoder_is_weighed_after_the_installed_one_and_installed_beside_it(
    second_dir: Path, encoder_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from codemlm.errors import CodemlmError
    from codemlm.search_rerank import SEARCH_ENCODER2_DIR
    from training.search_encoder import install, rerank_grid

    with pytest.raises(CodemlmError, match="within the first one's depth"):
        rerank_grid(encoder_dir, second_dir / SEARCH_ENCODER2_DIR, [0.0, 1.0], [5], tmp_path / "w", second=True)
    target = tmp_path / "model"
    shutil.copytree(encoder_dir, target)
    install(second_dir / SEARCH_ENCODER2_DIR, target, RerankSettings(weight=6.0, depth=3), {"mrr": 0.6}, second=True)
    reranker = EncoderReranker.from_model_dir(target)
    assert reranker.second is not None and reranker.second.settings == RerankSettings(weight=6.0, depth=3)
    assert reranker.settings == RerankSettings(weight=2.0, depth=4)  # the first encoder is untouched
    assert load_model_dir(target / SEARCH_ENCODER2_DIR).summary["search_rerank_validation"] == {"mrr": 0.6}


def test_a_replaced_stage_names_the_later_ones_weighed_on_the_old_order(second_dir: Path) -> None:
    from training.search_encoder import stale_stages

    first = stale_stages(second_dir, second=False)  # the first encoder replaced: both later stages stale
    assert len(first) == 2 and "--second" in first[0] and "train it again" in first[1]
    assert [line.split()[-1] for line in stale_stages(second_dir, second=True)] == ["training.search_cross"]


def test_a_broken_second_encoder_fails_the_load_in_one_line(
    second_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    from codemlm.cli import main
    from codemlm.search_rerank import SEARCH_ENCODER2_DIR

    repo, model, common = _cli_model(tmp_path, second_dir / SEARCH_ENCODER_DIR, second_dir)  # + all three stages
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 0
    capsys.readouterr()
    config_file = model / SEARCH_ENCODER2_DIR / "config.json"
    data = json.loads(config_file.read_text())
    data["summary"]["search_rerank"] = {"weight": -1.0, "depth": 3}
    config_file.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="weight >= 0"):
        EncoderReranker.from_model_dir(model)
    assert main(["search", "polygon area", str(repo), *common, "--rerank"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "search_rerank" in errors[0]
    (model / SEARCH_ENCODER2_DIR / "model.safetensors").write_bytes(b"not weights")
    config_file.write_text(json.dumps({**data, "summary": {**data["summary"], "search_rerank": {"weight": 1.0}}}))
    with pytest.raises(CheckpointError):
        EncoderReranker.from_model_dir(model)
