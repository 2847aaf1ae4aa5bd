"""Hybrid search: FTS escaping, fusion and explain ranks, filters, modes, the CLI end to end."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_index import HashingEmbedder, write_repo

from codemlm.cli import main
from codemlm.errors import InputError
from codemlm.index import RepoIndex
from codemlm.search import (
    ExactVectorStore,
    dense_can_read,
    fts_query,
    fuse_scores,
    lexical_score,
    lexical_votes,
    path_matches,
    reciprocal_rank_fusion,
    search,
)

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"


@pytest.fixture
def indexed(tmp_path: Path):
    repo = write_repo(tmp_path / "repo")
    index = RepoIndex.open(repo, index_path=tmp_path / "index.sqlite", embedder=HashingEmbedder(dim=64))
    index.update()
    yield index
    index.close()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model directory: tokenizer trained on the fixture, randomly initialized tiny encoder."""
    import torch

    from codemlm.checkpoint import save_model_dir
    from codemlm.config import ModelConfig
    from codemlm.model import CodeEncoder
    from codemlm.tokenizer import CodeTokenizer

    texts = [p.read_text(encoding="utf-8", errors="replace") for p in FIXTURE_REPO.rglob("*") if p.is_file()]
    tokenizer = CodeTokenizer.train_from_iterator(texts * 3, vocab_size=400, min_frequency=1)
    torch.manual_seed(0)
    model = CodeEncoder(ModelConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size))
    # A dense side with a vote, so the index embeds (a model at weight 0 embeds nothing).
    summary = {"test": True, "search_dense_weight": 0.5}
    return save_model_dir(tmp_path_factory.mktemp("model") / "tiny", model, tokenizer, summary=summary)


# --------------------------------------------------------------------------- lexical side
@pytest.mark.parametrize(
    "hostile",
    ['"', "'", "AND OR NOT", "foo NEAR(bar)", "col:value", "a* ^b", "(((", "-x +y", "\x00", "🙂 ünïcode", "'; DROP TABLE chunks; --"],
)
def test_hostile_queries_never_raise(indexed: RepoIndex, hostile: str) -> None:
    for mode in ("hybrid", "lexical", "dense"):
        assert isinstance(search(indexed, hostile, mode=mode), list)
    assert indexed.count_chunks() > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40))
def test_arbitrary_text_is_a_valid_fts_query(indexed: RepoIndex, query: str) -> None:
    expression = fts_query(query)
    if expression is not None:
        with contextlib.closing(sqlite3.connect(indexed.path)) as conn:
            conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (expression,))
    search(indexed, query, mode="lexical")


def test_fts_query_quotes_terms_and_drops_stopwords() -> None:
    assert fts_query("getUserName") == '"get" OR "user" OR "name" OR "getusername"'
    assert fts_query("what is the getUserName")[: len('"get" OR')] == '"get" OR'  # stopwords dropped
    assert fts_query("the of") == '"the" OR "of" OR "theof"'  # nothing but stopwords: keep them
    assert fts_query("!!! ???") is None
    # neighbouring words glued, to meet glued and camelCase names
    assert '"asdict"' in fts_query("as dict") and '"isplainobject"' in fts_query("is plain object")


# --------------------------------------------------------------------------- fusion
def test_reciprocal_rank_fusion_scores() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]


def test_weighted_fusion_scales_each_side() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2], [2, 1]], k=60, weights=[1.0, 0.25]))
    assert fused[1] == pytest.approx(1 / 61 + 0.25 / 62)
    assert fused[2] == pytest.approx(1 / 62 + 0.25 / 61)
    # A weak dense side cannot overturn the lexical order; an equal one can tie it.
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2], [2, 1]], weights=[1.0, 0.25])] == [1, 2]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[1], [2]], weights=[1.0])


def test_score_fusion_adds_the_weighted_cosine_to_the_lexical_vote() -> None:
    assert lexical_score(1) == 1.0 and 0.0 < lexical_score(100) < lexical_score(10) < lexical_score(2) < 1.0
    # The lexical vote is the BM25 relevance over the query's best.
    assert lexical_votes([(1, 8.0), (2, 4.0), (3, 2.0)]) == [(1, 1.0), (2, 0.5), (3, 0.25)]
    # No positive relevance to divide by (FTS5's IDF floor for very common words): votes by rank.
    assert lexical_votes([(1, 0.0), (2, 0.0)]) == [(1, 1.0), (2, lexical_score(2))]
    lexical = [(1, 8.0), (2, 4.0), (3, 2.0)]
    dense = [(4, 0.9), (1, 0.5), (2, -0.2)]
    fused = dict(fuse_scores(lexical, dense, dense_weight=2.0))
    assert fused[1] == pytest.approx(1.0 + 2 * 0.5)
    assert fused[2] == pytest.approx(0.5)  # a negative cosine counts as 0
    assert fused[3] == pytest.approx(0.25)  # not listed by dense: its lowest cosine, here 0
    assert fused[4] == pytest.approx(2 * 0.9)  # dense alone: a sure dense hit overtakes lexical's second
    assert [c for c, _ in fuse_scores(lexical, dense, 2.0)] == [1, 4, 2, 3]
    # Weight 0 is the lexical order, dense-only candidates last; no lexical side is the dense order.
    assert [c for c, _ in fuse_scores([(3, 5.0), (1, 1.0)], [(1, 0.9), (2, 0.8)], 0.0)][:2] == [3, 1]
    assert [c for c, _ in fuse_scores([], [(5, 0.3), (6, 0.7)], 1.0)] == [6, 5]
    # A lexical candidate outside the dense list is ranked as if at the bottom of that list.
    assert dict(fuse_scores([(7, 3.0)], [(8, 0.6), (9, 0.4)], 1.0))[7] == pytest.approx(1.0 + 0.4)


def test_dense_weight_follows_how_the_model_was_trained() -> None:
    from codemlm.embedder import MLM_ONLY_DENSE_WEIGHT, dense_weight_for

    assert dense_weight_for({"task": "contrastive"}) == 1.0
    assert dense_weight_for({"task": "mlm"}) == MLM_ONLY_DENSE_WEIGHT < 0.5
    assert dense_weight_for(None) == MLM_ONLY_DENSE_WEIGHT
    assert dense_weight_for({"task": "contrastive", "search_dense_weight": 0.5}) == 0.5


def test_hybrid_dense_weight_zero_is_the_lexical_order(indexed: RepoIndex) -> None:
    hybrid = search(indexed, "circle area radius", k=5, dense_weight=0.0)
    lexical = search(indexed, "circle area radius", k=5, mode="lexical")
    assert [r.chunk_id for r in hybrid[: len(lexical)]] == [r.chunk_id for r in lexical]


def test_hybrid_results_explain_both_ranks(indexed: RepoIndex) -> None:
    hybrid = search(indexed, "circle area radius", k=5, rerank=False)
    lexical = search(indexed, "circle area radius", k=100, mode="lexical", rerank=False)
    dense = search(indexed, "circle area radius", k=100, mode="dense", rerank=False)
    lexical_rank = {r.chunk_id: i for i, r in enumerate(lexical, 1)}
    dense_rank = {r.chunk_id: i for i, r in enumerate(dense, 1)}
    cosine = {r.chunk_id: r.score for r in dense}  # a dense search's score is the cosine (negatives 0)
    votes = {r.chunk_id: r.score for r in lexical}  # a lexical search's score is the lexical vote
    assert lexical[0].score == 1.0 and all(0.0 <= r.score <= 1.0 for r in lexical)
    assert hybrid[0].name == "circle_area"
    for result in hybrid:
        assert result.lexical_rank == lexical_rank.get(result.chunk_id)
        assert result.dense_rank == dense_rank.get(result.chunk_id)
        vote = votes.get(result.chunk_id, 0.0)
        # the embedder's weight is 1; a chunk the dense side did not list gets its lowest cosine
        expected = vote + cosine.get(result.chunk_id, min(cosine.values()))
        assert result.score == pytest.approx(expected, abs=1e-6)
    assert [r.score for r in hybrid] == sorted((r.score for r in hybrid), reverse=True)
    assert all(r.dense_rank is None for r in lexical) and all(r.lexical_rank is None for r in dense)


def test_exact_vector_store_respects_allowed_ids() -> None:
    matrix = np.eye(4, dtype=np.float32)
    store = ExactVectorStore(np.array([10, 11, 12, 13]), matrix)
    query = np.array([0.1, 0.9, 0.5, 0.0], dtype=np.float32)
    assert [i for i, _ in store.nearest(query, 3)] == [11, 12, 10]
    assert [i for i, _ in store.nearest(query, 3, allowed=np.array([10, 13]))] == [10, 13]
    assert ExactVectorStore(np.zeros(0, dtype=np.int64), np.zeros((0, 4))).nearest(query, 3) == []


# --------------------------------------------------------------------------- filters and modes
def test_language_and_path_filters(indexed: RepoIndex) -> None:
    everything = search(indexed, "fetch json url area", k=50)
    assert {r.language for r in everything} == {"python", "javascript"}
    only_js = search(indexed, "fetch json url area", k=50, language="javascript")
    assert only_js and all(r.language == "javascript" for r in only_js)
    only_pkg = search(indexed, "fetch json url area", k=50, path_glob="pkg/*")
    assert only_pkg and all(r.path.startswith("pkg/") for r in only_pkg)
    assert search(indexed, "area", path_glob="nowhere/*") == []
    assert search(indexed, "area", path_glob="**/*.js") == search(indexed, "area", path_glob="*.js") != []
    assert path_matches("src/a.py", "src/**/*.py") and path_matches("src/x/a.py", "src/**/*.py")
    assert not path_matches("lib/a.py", "src/**/*.py")
    assert search(indexed, "area", language="rust") == []


def test_bad_arguments_are_input_errors(indexed: RepoIndex, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        search(indexed, "x", mode="semantic")
    with pytest.raises(InputError):
        search(indexed, "x", k=0)
    assert search(indexed, "   ") == []
    with RepoIndex.open(indexed.root, index_path=tmp_path / "lex.sqlite") as lexical_only:
        lexical_only.update()
        with pytest.raises(InputError, match="lexical-only"):
            search(lexical_only, "area", mode="dense")
        assert all(r.dense_rank is None for r in search(lexical_only, "area"))


def test_cached_matrix_follows_writes(indexed: RepoIndex) -> None:
    assert not search(indexed, "zebra stripes", mode="dense", k=1)[0].name.startswith("zebra")
    indexed.update_file("pkg/zoo.py", "def zebra_stripes(count):\n    return count\n")
    assert search(indexed, "zebra stripes", mode="dense", k=1)[0].name == "zebra_stripes"
    indexed.remove_file("pkg/zoo.py")
    assert all(r.name != "zebra_stripes" for r in search(indexed, "zebra stripes", k=50))


# --------------------------------------------------------------------------- CLI
def test_cli_search_lexical_fallback_without_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "multilang_repo"
    shutil.copytree(FIXTURE_REPO, repo)
    monkeypatch.setenv("CODEMLM_MODEL", str(tmp_path / "no-such-model"))
    monkeypatch.setenv("CODEMLM_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["search", "euclidean distance between two points", "--repo", str(repo), "--json", "-k", "3"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out.strip().splitlines()[-1])
    assert "lexical search only" in captured.err
    assert payload["mode"] == "lexical"
    top = payload["results"][0]
    # legacy/shapes.py is a near-copy of src/geometry/shapes.py in the fixture: either answers
    assert top["path"].endswith("shapes.py") and (top["name"], top["kind"]) == ("distance", "function")
    assert top["line"] >= 1 and top["dense_rank"] is None
    # gitignored scratch files never show up
    status = main(["search", "todo notes scratch", "--repo", str(repo), "--json", "-k", "50"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == (0 if payload["results"] else 1)  # grep's convention: 1 when nothing matched
    assert not any(r["path"].startswith("local_notes/") or r["path"] == "scratch.tmp.py" for r in payload["results"])


def test_cli_index_then_search_with_a_real_tiny_model(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    torch.set_num_threads(1)
    repo = tmp_path / "multilang_repo"
    shutil.copytree(FIXTURE_REPO, repo)
    index_path = tmp_path / "idx.sqlite"
    common = ["--model", str(tiny_model_dir), "--index-path", str(index_path)]
    assert main(["index", str(repo), *common]) == 0
    out = capsys.readouterr().out
    assert "hybrid" in out and "files indexed" in out
    assert main(["index", str(repo), *common]) == 0
    assert "0 files indexed" in capsys.readouterr().out  # nothing changed: nothing re-embedded

    assert main(["search", "polygon area", "--repo", str(repo), *common, "--explain", "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert "shapes.py:" in text and "lexical" in text and "dense" in text

    assert main(["search", "polygon area", "--repo", str(repo), *common, "--json", "--lang", "python"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["mode"] == "hybrid"
    assert payload["results"] and all(r["language"] == "python" for r in payload["results"])
    assert any(r["dense_rank"] is not None for r in payload["results"])

    assert main(["search", "polygon", "--repo", str(repo), *common, "--mode", "dense", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(r["lexical_rank"] is None and r["dense_rank"] is not None for r in payload["results"])


def test_cli_errors_are_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "slugify", "--repo", str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert main(["search", "slugify", "--repo", str(tmp_path), "--model", str(tmp_path / "nope")]) == 1
    assert "no model directory" in capsys.readouterr().err


def test_model_embedder_batches_normalizes_and_fingerprints(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from codemlm.checkpoint import load_model_dir, save_model_dir
    from codemlm.embedder import Embedder, ModelEmbedder

    torch.set_num_threads(1)
    loaded = load_model_dir(tiny_model_dir)
    embedder = ModelEmbedder(loaded, batch_size=2, max_tokens=32, precision="fp32")  # exact: bf16 rounds per batch
    assert isinstance(embedder, Embedder) and embedder.dim == loaded.config.dim
    texts = ["def area(r):\n    return 3.14 * r * r", "x", "class Polygon:\n    pass\n" * 20, "bad \udcff bytes"]
    together = embedder.embed_code(texts)
    alone = np.concatenate([embedder.embed_code([t]) for t in texts])
    assert together.dtype == np.float32 and together.shape == (4, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-4)  # padding and length-sorting change nothing
    np.testing.assert_allclose(embedder.embed_query(["area"]), embedder.embed_code(["area"]), atol=1e-6)
    assert embedder.embed_code([]).shape == (0, embedder.dim)
    # other weights, other id: an index built with the old ones would be rebuilt
    with torch.no_grad():
        loaded.model.tok_emb.weight.add_(0.01)
    changed = save_model_dir(tmp_path / "changed", loaded.model, loaded.tokenizer, summary={})
    assert ModelEmbedder(load_model_dir(changed)).model_id != embedder.model_id
    assert ModelEmbedder(load_model_dir(tiny_model_dir)).model_id == embedder.model_id


def test_a_query_in_another_script_gets_no_dense_guesses(indexed: RepoIndex) -> None:
    # The embedder reads code and English: a query wholly in another script would get only the
    # vectors nearest to byte pieces, so the dense side stays out and lexical answers alone.
    assert dense_can_read("circle area") and dense_can_read("parse データ") and dense_can_read("x2 y")
    assert not dense_can_read("значение площади") and not dense_can_read("数据 解析") and not dense_can_read("ä ö 1")
    assert search(indexed, "площадь круга", k=5) == []
    assert search(indexed, "площадь круга", k=5, mode="dense") == []
    assert search(indexed, "circle площадь", k=5)[0].name == "circle_area"


def test_hybrid_answers_the_same_when_its_two_sides_run_at_once(indexed: RepoIndex, monkeypatch) -> None:
    import codemlm.search as search_module

    queries = ["circle area radius", "parse the config", "площадь circle", "Shape"]
    one_after_the_other = [search(indexed, q, k=10) for q in queries]
    monkeypatch.setattr(search_module, "OVERLAP_MIN_VECTORS", 0)  # overlap even this small index
    at_once = [search(indexed, q, k=10) for q in queries]
    assert at_once == one_after_the_other
    assert any(r.dense_rank is not None for results in at_once for r in results)
