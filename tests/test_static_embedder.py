"""The static token table: distillation with a fake teacher, serving without torch, the index's use of it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from codemlm.embedder import Embedder, LazyModelEmbedder
from codemlm.errors import CheckpointError
from codemlm.index import RepoIndex
from codemlm.search import search
from codemlm.static_embedder import STATIC_FILE, StaticEmbedder, save_static_table
from codemlm.tokenizer import CodeTokenizer
from training.distill_static import distill_table, sif_weights, token_texts
from training.static_validation import first_sentence, strip_docstrings

CODE = [
    "def parse_config(path):\n    with open(path) as handle:\n        return parse_config_text(handle.read())\n",
    "def draw_circle(canvas, radius):\n    canvas.arc(0, 0, radius, 0, 360)\n    return canvas\n",
    "class ConfigParser:\n    def parse(self, text):\n        return dict(line.split('=') for line in text.splitlines())\n",
    "def render_circle(radius, colour):\n    return draw_circle(make_canvas(), radius).fill(colour)\n",
    "def read_config_file(name):\n    return parse_config(config_path(name))\n",
] * 4


class NgramTeacher:
    """A deterministic sentence embedder: hashed character trigrams of the lower-cased text.
    Texts sharing letters get close vectors, as with a real teacher's subword units."""

    name = "fake-trigram"

    def __init__(self, dim: int = 48) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.strip().lower()}  "
            for i in range(len(padded) - 2):
                slot = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "little")
                out[row, slot % self.dim] += 1.0
        return out


@pytest.fixture(scope="module")
def tokenizer() -> CodeTokenizer:
    return CodeTokenizer.train_from_iterator(CODE, vocab_size=300, min_frequency=1)


def _model_dir(path: Path, tokenizer: CodeTokenizer, dense_weight: float = 1.0, table: np.ndarray | None = None) -> Path:
    """A model directory as the static path sees it: config, tokenizer, table (no weights needed)."""
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(path / "tokenizer.json")
    (path / "config.json").write_text(json.dumps({"model": {"name": "tiny", "dim": 64}, "summary": {}}))
    if table is None:
        table = distill_table(tokenizer, NgramTeacher(), dims=16)
    save_static_table(path / STATIC_FILE, table, tokenizer, {"teacher": "fake-trigram", "dense_weight": dense_weight})
    return path


def test_distilled_table_has_a_row_per_token_and_zero_rows_for_whitespace_and_specials(tokenizer: CodeTokenizer) -> None:
    table = distill_table(tokenizer, NgramTeacher(), dims=16)
    texts, useful = token_texts(tokenizer)
    assert table.shape == (tokenizer.vocab_size, 16) and table.dtype == np.float32
    assert not useful[:5].any() and not table[:5].any()  # the five special tokens
    blank = [i for i, t in enumerate(texts) if t and not t.strip()]
    assert blank and not table[blank].any()
    assert np.linalg.norm(table[useful], axis=1).min() > 0


def test_sif_weights_favour_rare_tokens() -> None:
    counts = np.array([0, 1000, 10, 1])
    weights = sif_weights(counts, 4, a=1e-2)
    assert weights[0] == pytest.approx(1.0) and weights[1] < weights[2] < weights[3]
    zipf = sif_weights(None, 100)  # no counts: later BPE merges are rarer
    assert np.all(np.diff(zipf) > 0)


def test_static_embedder_ranks_the_related_snippet_first(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    embedder = StaticEmbedder.from_model_dir(_model_dir(tmp_path / "m", tokenizer))
    assert isinstance(embedder, Embedder) and embedder.dense_weight == 1.0 and embedder.dim == 16
    code = embedder.embed_code([CODE[0], CODE[1], ""])
    assert code.shape == (3, 16) and code.dtype == np.float32
    assert np.allclose(np.linalg.norm(code[:2], axis=1), 1.0) and not code[2].any()  # empty text: zero row
    query = embedder.embed_query(["parse the config"])[0]
    assert float(code[0] @ query) > float(code[1] @ query) + 0.1
    assert embedder.embed_code([]).shape == (0, 16)


def test_a_table_for_another_vocabulary_is_refused(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    model = _model_dir(tmp_path / "m", tokenizer)
    other = CodeTokenizer.train_from_iterator(CODE, vocab_size=280, min_frequency=1)
    assert other.vocab_size != tokenizer.vocab_size
    other.save(model / "tokenizer.json")
    with pytest.raises(CheckpointError, match="distill it again"):
        StaticEmbedder.from_model_dir(model)
    with pytest.raises(CheckpointError, match="distill it again"):
        LazyModelEmbedder(model)  # refused when the directory is opened, not at the first search
    with pytest.raises(CheckpointError, match="one row per token"):
        save_static_table(tmp_path / "x.safetensors", np.zeros((3, 4)), tokenizer, {"dense_weight": 0.0})


def test_a_damaged_table_is_a_checkpoint_error(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    model = _model_dir(tmp_path / "m", tokenizer)
    (model / STATIC_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable static table"):
        StaticEmbedder.from_model_dir(model)


def _repo(path: Path) -> Path:
    path.mkdir()
    (path / "config.py").write_text(CODE[0] + "\n\n" + CODE[4])
    (path / "shapes.py").write_text(CODE[1] + "\n\n" + CODE[3])
    return path


def test_the_index_embeds_with_the_static_table(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    embedder = LazyModelEmbedder(_model_dir(tmp_path / "m", tokenizer))
    assert embedder.static is not None and embedder.model_id.startswith("static:") and embedder.dim == 16
    with RepoIndex.open(_repo(tmp_path / "repo"), index_path=tmp_path / "i.sqlite", embedder=embedder) as index:
        stats = index.update()
        assert stats.chunks_embedded == index.count_chunks() == index.count_vectors() > 0
        hits = search(index, "parse the config", mode="dense", k=4)
        assert hits[0].path == "config.py" and hits[0].dense_rank == 1
        assert search(index, "parse the config", mode="hybrid", k=1)[0].path == "config.py"
    assert not embedder.is_loaded  # the encoder was never needed


def test_a_table_without_a_vote_embeds_nothing(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    embedder = LazyModelEmbedder(_model_dir(tmp_path / "m", tokenizer, dense_weight=0.0))
    with RepoIndex.open(_repo(tmp_path / "repo"), index_path=tmp_path / "i.sqlite", embedder=embedder) as index:
        assert index.update().chunks_embedded == 0 and index.embedder is None


_NO_TORCH = """
import sys
from codemlm.embedder import LazyModelEmbedder
from codemlm.index import RepoIndex
from codemlm.search import search
embedder = LazyModelEmbedder({model!r})
with RepoIndex.open({repo!r}, index_path={index!r}, embedder=embedder) as index:
    index.update()
    hits = search(index, "parse the config", mode="hybrid")
print(hits[0].path, "torch" in sys.modules)
"""


def test_static_indexing_and_search_never_import_torch(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    model = _model_dir(tmp_path / "m", tokenizer)
    script = _NO_TORCH.format(model=str(model), repo=str(_repo(tmp_path / "repo")), index=str(tmp_path / "i.sqlite"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["config.py", "False"]


def test_validation_copy_loses_its_docstrings_and_still_parses() -> None:
    source = 'def f(x):\n    """Add one to x."""\n    return x + 1\n\n\nclass A:\n    """Only a doc."""\n'
    stripped = strip_docstrings(source)
    assert '"""' not in stripped and "return x + 1" in stripped and "class A:\n    pass\n" in stripped
    compile(stripped, "<stripped>", "exec")
    assert first_sentence("Return the sum. More text.") == "Return the sum."
    assert first_sentence("Short.") is None


def test_validation_gives_no_vote_to_a_table_that_does_not_beat_bm25(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    from training.distill_static import WEIGHT_GRID, validate

    repo = _repo(tmp_path / "repo")
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"id": "a", "query": "parse config", "path": "config.py", "line": 1}) + "\n"
        + json.dumps({"id": "b", "query": "draw circle", "path": "shapes.py", "line": 1}) + "\n"
    )
    noise = np.random.default_rng(0).standard_normal((tokenizer.vocab_size, 8)).astype(np.float32)
    measured = validate(noise, tokenizer, {"teacher": "noise"}, repo, cases, tmp_path / "i.sqlite")
    assert measured["lexical_mrr"] == 1.0  # BM25 already ranks both answers first
    assert measured["best_weight"] == 0.0 and measured["cases"] == 2
    assert set(measured["hybrid_mrr_by_weight"]) == {str(w) for w in WEIGHT_GRID}


def test_token_counts_come_from_a_data_directory_of_the_same_tokenizer(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    from datasets import Dataset, DatasetDict

    from training.distill_static import data_token_counts

    rows = [[5, 6, 6], [6, 7], [7]]
    DatasetDict({"train": Dataset.from_dict({"input_ids": rows})}).save_to_disk(str(tmp_path / "data" / "tokens"))
    tokenizer.save(tmp_path / "data" / "tokenizer.json")
    counts = data_token_counts(tmp_path / "data", tokenizer)
    assert counts.shape == (tokenizer.vocab_size,) and counts[5] == 1 and counts[6] == 3 and counts[7] == 2
    assert counts.sum() == 6
    CodeTokenizer.train_from_iterator(CODE, vocab_size=280, min_frequency=1).save(tmp_path / "data" / "tokenizer.json")
    with pytest.raises(SystemExit, match="another tokenizer"):
        data_token_counts(tmp_path / "data", tokenizer)


def test_fitting_on_chunks_moves_chunk_means_toward_the_teacher(tokenizer: CodeTokenizer) -> None:
    from training.distill_static import fit_table

    teacher = NgramTeacher()
    init = distill_table(tokenizer, teacher, dims=16)
    texts = [*CODE[:5], "parse the config file", "draw a circle on the canvas"]
    targets = teacher.embed(texts)[:, :16]  # any fixed target width equal to the table's

    def agreement(table: np.ndarray) -> float:
        embedder = StaticEmbedder(table, tokenizer, {"dense_weight": 1.0}, model_id="t")
        goal = targets / np.linalg.norm(targets, axis=1, keepdims=True)
        return float(np.mean(np.sum(embedder.embed_code(texts) * goal, axis=1)))

    fitted = fit_table(init, tokenizer, texts, targets, [(5, 0), (6, 1)], epochs=200, batch_size=2, lr=1e-2)
    assert fitted.shape == init.shape and fitted.dtype == np.float32
    assert agreement(fitted) > agreement(init) + 0.05
    embedder = StaticEmbedder(fitted, tokenizer, {"dense_weight": 1.0}, model_id="t")
    code, queries = embedder.embed_code(CODE[:2]), embedder.embed_query(texts[5:])
    assert np.argmax(queries @ code.T, axis=1).tolist() == [0, 1]  # each query nearest its own chunk
    unused = [i for i in range(tokenizer.vocab_size) if i not in set(np.concatenate(tokenizer.encode_ids_batch(texts)))]
    assert np.array_equal(fitted[unused], init[unused])  # rows no text holds are left as they were


def test_a_table_is_stored_at_half_precision_and_served_as_float32(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    table = distill_table(tokenizer, NgramTeacher(), dims=16)
    model = _model_dir(tmp_path / "m", tokenizer, table=table)
    assert (model / STATIC_FILE).stat().st_size < table.nbytes
    loaded = StaticEmbedder.from_model_dir(model)
    assert loaded.table.dtype == np.float32 and np.allclose(loaded.table, table, atol=1e-3)


def test_training_chunks_leave_out_the_validation_modules_and_carry_their_queries(tmp_path: Path) -> None:
    from training.static_validation import training_chunks

    root = tmp_path / "lib"
    root.mkdir()
    body = "\n".join(f"    total = total + {i}" for i in range(60))
    for name in ("kept", "held"):
        (root / f"{name}.py").write_text(
            f'def {name}_sum(values):\n    """Add up the {name} values given."""\n    total = 0\n{body}\n    return total\n\n\n'
            f"def {name}_plain(x):\n{body.replace('total = total', 'x = x')}\n    return x\n"
        )
    chunks = training_chunks([root], [root / "held.py"], max_chunks=10, documented_share=0.5)
    assert [c.query for c in chunks] == ["Add up the kept values given.", None]
    assert all("held" not in c.text for c in chunks)
    assert chunks[0].text.startswith("def kept_sum") and '"""' not in chunks[0].text  # stripped, as indexed


def test_a_terms_table_reads_names_as_the_words_of_a_query(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    from codemlm.static_embedder import prepare_texts

    assert prepare_texts(["def parseConfig(path):"], "terms") == [" def parse config parseconfig path"]
    assert prepare_texts(["x = 1"], "code") == ["x = 1"]
    table = distill_table(tokenizer, NgramTeacher(), dims=16)
    embedder = StaticEmbedder(table, tokenizer, {"dense_weight": 1.0, "text_form": "terms"}, model_id="t")
    code, query = embedder.embed_code(["parse_config"]), embedder.embed_query(["Parse Config"])
    assert np.allclose(code, StaticEmbedder(table, tokenizer, {}, model_id="c").embed_code([" parse config parseconfig"]))
    assert float(code[0] @ query[0]) > 0.5
    with pytest.raises(CheckpointError, match="unknown static text form"):
        StaticEmbedder(table, tokenizer, {"text_form": "shouting"}, model_id="t")


def test_a_repeated_head_weighs_a_chunks_signature_and_leaves_a_query_as_it_was(tokenizer: CodeTokenizer) -> None:
    from codemlm.static_embedder import prepare_texts

    chunk = "def parse_config(path):\n    return draw(path)\n"
    assert prepare_texts([chunk], "terms", head_repeat=2) == [
        " def parse config parseconfig path def parse config parseconfig path"
        " def parse config parseconfig path return draw path"
    ]
    table = distill_table(tokenizer, NgramTeacher(), dims=16)
    plain = StaticEmbedder(table, tokenizer, {"text_form": "terms"}, model_id="p")
    headed = StaticEmbedder(table, tokenizer, {"text_form": "terms", "head_repeat": 3}, model_id="h")
    assert np.allclose(headed.embed_query(["parse the config"]), plain.embed_query(["parse the config"]), atol=1e-6)
    signature = plain.embed_code(["def parse_config(path):"])[0]
    assert float(headed.embed_code([chunk])[0] @ signature) > float(plain.embed_code([chunk])[0] @ signature)


def test_mined_pairs_without_a_teacher_vector_train_the_contrastive_loss_only(tokenizer: CodeTokenizer) -> None:
    from training.distill_static import fit_table

    teacher = NgramTeacher()
    init = distill_table(tokenizer, teacher, dims=16)
    taught = CODE[:3]  # the teacher embedded these three chunks and nothing else
    targets = teacher.embed(taught)[:, :16]
    # Two mined (code, docstring) pairs past the taught texts: indexes 3, 4 are code, 5, 6 queries.
    texts = [*taught, CODE[3], CODE[4], "render a filled circle", "read the named config file"]
    fitted = fit_table(init, tokenizer, texts, targets, [(5, 3), (6, 4)], epochs=150, batch_size=2, lr=1e-2)
    embedder = StaticEmbedder(fitted, tokenizer, {"dense_weight": 1.0}, model_id="t")
    code, queries = embedder.embed_code([CODE[3], CODE[4]]), embedder.embed_query(texts[5:])
    assert np.argmax(queries @ code.T, axis=1).tolist() == [0, 1]
    assert np.all(np.isfinite(fitted))


def test_mined_pairs_refuse_held_out_code_and_drop_copies_of_validation_modules(tmp_path: Path) -> None:
    from training.static_validation import training_pairs

    body = "\n".join(f"    total = total + {i}" for i in range(100))

    def module(name: str, doc: str) -> str:
        return f'def {name}(values):\n    """{doc}"""\n    total = 0\n{body}\n    return total\n'

    validation = tmp_path / "stdlib" / "sums.py"
    validation.parent.mkdir()
    validation.write_text(module("add_all", "Add up all the values given."))
    lib = tmp_path / "site" / "lib"
    lib.mkdir(parents=True)
    (lib / "copy.py").write_text(module("add_all", "Add up all the values given."))  # a vendored copy
    (lib / "own.py").write_text(module("own_sum", "Sum the values of one's own."))
    pairs = training_pairs([lib], [validation], max_pairs=10)
    assert [p.query for p in pairs] == ["Sum the values of one's own."]
    assert training_pairs([lib], [validation], max_pairs=0) == []
    held = tmp_path / "site" / "toolz"
    held.mkdir()
    with pytest.raises(SystemExit, match="held-out"):
        training_pairs([held], [validation], max_pairs=10)


def test_the_teacher_cache_embeds_only_texts_no_cached_block_holds(tmp_path: Path) -> None:
    from training.distill_static import teacher_vectors

    class Counting(NgramTeacher):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            self.seen.extend(texts)
            return super().embed(texts)

    teacher = Counting()
    first = teacher_vectors(teacher, ["alpha", "beta"], tmp_path)
    again = teacher_vectors(teacher, ["alpha", "beta"], tmp_path)
    assert teacher.seen == ["alpha", "beta"] and np.array_equal(first, again)
    more = teacher_vectors(teacher, ["gamma", "beta", "alpha"], tmp_path)  # larger, reordered
    assert teacher.seen == ["alpha", "beta", "gamma"]
    assert np.array_equal(more, NgramTeacher().embed(["gamma", "beta", "alpha"]))
    assert np.array_equal(teacher_vectors(teacher, ["beta"], None), NgramTeacher().embed(["beta"]))


def test_word_rows_join_the_pieces_of_the_words_they_name(tmp_path: Path, tokenizer: CodeTokenizer) -> None:
    from training.distill_static import word_vocabulary

    prepared = [" parse config parseconfig path", " draw circle canvas", " parse config text", " x1"]
    words = word_vocabulary(prepared, tokenizer, size=10, min_count=2)
    assert words[:2] == ["config", "parse"] and "x1" not in words and "canvas" not in words
    base = distill_table(tokenizer, NgramTeacher(), dims=16)
    word_row = np.zeros((2, 16), dtype=np.float32)
    word_row[0, 0] = 100.0  # "parse" points along the first axis, whatever its pieces say
    table = np.concatenate([base, word_row])
    meta = {"dense_weight": 1.0, "text_form": "terms", "words": ["parse", "config"]}  # any order serves
    save_static_table(tmp_path / "m" / STATIC_FILE, table, tokenizer, meta)
    tokenizer.save(tmp_path / "m" / "tokenizer.json")
    embedder = StaticEmbedder.from_model_dir(tmp_path / "m")
    assert embedder.table.shape[0] == tokenizer.vocab_size + 2
    assert embedder.embed_query(["parse"])[0, 0] > 0.99  # its word row dominates its pieces
    plain = StaticEmbedder(base, tokenizer, {"text_form": "terms"}, model_id="p")
    # "config" has a zero word row and "draw" none: both read as their pieces alone.
    assert np.allclose(embedder.embed_code(["config", "draw"]), plain.embed_code(["config", "draw"]), atol=1e-3)
    with pytest.raises(CheckpointError, match="per word"):
        save_static_table(tmp_path / "x.safetensors", base, tokenizer, meta)
    with pytest.raises(CheckpointError, match="terms text form"):
        StaticEmbedder(table, tokenizer, {**meta, "text_form": "code"}, model_id="c")


def test_fitting_moves_word_rows_and_serves_them_as_fitted(tokenizer: CodeTokenizer) -> None:
    from codemlm.static_embedder import prepare_texts
    from training.distill_static import fit_table

    teacher = NgramTeacher()
    words = ["circle", "config"]
    init = np.concatenate([distill_table(tokenizer, teacher, dims=16), np.zeros((2, 16), dtype=np.float32)])
    texts = prepare_texts([*CODE[:5], "parse the config file", "draw a circle on the canvas"], "terms")
    targets = teacher.embed(texts)[:, :16]
    fitted = fit_table(init, tokenizer, texts, targets, [(5, 0), (6, 1)], epochs=100, batch_size=2, lr=1e-2,
                       words=words)
    assert fitted.shape == init.shape and np.abs(fitted[-2:]).max(axis=1).min() > 0  # both words moved off zero
    embedder = StaticEmbedder(fitted, tokenizer, {"text_form": "terms", "words": words}, model_id="w")
    code, queries = embedder.embed_code(CODE[:2]), embedder.embed_query(["parse the config file", "draw a circle"])
    assert np.argmax(queries @ code.T, axis=1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="words"):
        fit_table(init[:-1], tokenizer, texts, targets, [(5, 0)], epochs=1, words=words)
