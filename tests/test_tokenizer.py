"""The byte-level BPE: exact round trip, byte offsets that tile the text, clear load errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codemlm.errors import TokenizerError
from codemlm.tokenizer import SPECIAL_TOKENS, CodeTokenizer

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"
SOURCE_SUFFIXES = {".py", ".js", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h", ".cpp"}


def fixture_texts() -> list[str]:
    texts = []
    for path in sorted(FIXTURE_REPO.rglob("*")):
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return texts


@pytest.fixture(scope="module")
def tokenizer() -> CodeTokenizer:
    return CodeTokenizer.train_from_iterator(fixture_texts(), vocab_size=1200, min_frequency=2)


# Text that stresses the round trip: code punctuation, whitespace runs, CRLF, any Unicode
# (surrogates excluded: they cannot be UTF-8 encoded, so no source file holds them).
code_alphabet = st.sampled_from(list(" \t\r\n\n    ()[]{}.:;,=+-*/<>'\"#_$@\\`~|&^%!?0123456789abcxyzXYZ"))
any_char = st.characters(exclude_categories=["Cs"])
texts = st.lists(
    st.one_of(code_alphabet, any_char, st.sampled_from(["<mask>", "<pad>", "é", "🙂", "\r\n"])), max_size=80
).map("".join)


def test_special_tokens_have_ids_zero_to_four(tokenizer: CodeTokenizer) -> None:
    for expected, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == expected
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert tokenizer.special_ids == frozenset(range(5))
    assert 256 + 5 < tokenizer.vocab_size <= 1200


def test_training_learns_merges_for_code(tokenizer: CodeTokenizer) -> None:
    text = "def area(self):\n        return self.width * self.height\n"
    encoded = tokenizer.encode(text)
    # A BPE that learned nothing would give one token per byte.
    assert len(encoded.ids) < len(text.encode()) / 2
    assert "return" in [t.strip() for t in tokenizer.tokens(encoded.ids)]


def test_identifiers_do_not_absorb_punctuation(tokenizer: CodeTokenizer) -> None:
    pieces = tokenizer.tokens(tokenizer.encode("self.width").ids)
    assert "." in pieces and not any(p.startswith(".") and len(p) > 1 for p in pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_round_trip_is_exact(tokenizer: CodeTokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_byte_offsets_tile_the_utf8_text(tokenizer: CodeTokenizer, text: str) -> None:
    data = text.encode("utf-8")
    encoded = tokenizer.encode(text)
    position = 0
    for token_id, (start, end) in zip(encoded.ids, encoded.offsets, strict=True):
        assert start == position and end > start and end <= len(data)
        assert data[start:end] == tokenizer.token_bytes(token_id)
        position = end
    assert position == len(data)


def test_whitespace_and_line_endings_survive(tokenizer: CodeTokenizer) -> None:
    text = "if x:\r\n\t\treturn  1   \r\n\n\n        \tpass\n   "
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_special_token_strings_in_text_stay_text(tokenizer: CodeTokenizer) -> None:
    encoded = tokenizer.encode("x = '<mask>' + '<pad>'")
    assert not set(encoded.ids) & tokenizer.special_ids
    assert tokenizer.decode(encoded.ids) == "x = '<mask>' + '<pad>'"
    (batched,) = tokenizer.encode_ids_batch(["<cls><sep><mask>"])
    assert not set(batched.tolist()) & tokenizer.special_ids


def test_decode_drops_special_tokens(tokenizer: CodeTokenizer) -> None:
    ids = tokenizer.encode("a = 1").ids
    assert tokenizer.decode([tokenizer.cls_id, *ids, tokenizer.sep_id, tokenizer.pad_id]) == "a = 1"


def test_encode_batch_matches_encode(tokenizer: CodeTokenizer) -> None:
    batch = ["def f():\n    pass\n", "", "ünïcode 🙂"]
    assert tokenizer.encode_batch(batch) == [tokenizer.encode(t) for t in batch]
    assert [list(x) for x in tokenizer.encode_ids_batch(batch)] == [tokenizer.encode(t).ids for t in batch]


def test_save_load_round_trip(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    path = tokenizer.save(tmp_path / "sub" / "tokenizer.json")
    loaded = CodeTokenizer.from_file(path)
    text = 'fn main() {\n    println!("héllo");\n}\n'
    assert loaded.encode(text) == tokenizer.encode(text)
    assert loaded.vocab_size == tokenizer.vocab_size
    assert CodeTokenizer.from_str(tokenizer.to_str()).encode(text) == tokenizer.encode(text)


def test_pickles_for_worker_processes(tokenizer: CodeTokenizer) -> None:
    import pickle

    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.encode("x = <mask>").ids == tokenizer.encode("x = <mask>").ids


def test_missing_file_raises_tokenizer_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        CodeTokenizer.from_file(tmp_path / "nope.json")


def test_corrupt_file_raises_tokenizer_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text("{ this is not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        CodeTokenizer.from_file(path)


def test_file_without_special_tokens_raises(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    plain = Tokenizer(models.BPE())
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    plain.train_from_iterator(["some text"], trainer=trainers.BpeTrainer(vocab_size=300, show_progress=False))
    path = tmp_path / "plain.json"
    path.write_text(plain.to_str(), encoding="utf-8")
    with pytest.raises(TokenizerError, match="special token '<pad>'"):
        CodeTokenizer.from_file(path)
    # Special tokens present but in the wrong order.
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    vocab["<pad>"], vocab["<cls>"] = vocab["<cls>"], vocab["<pad>"]
    for added in data["added_tokens"]:
        added["id"] = vocab[added["content"]]
    with pytest.raises(TokenizerError):
        CodeTokenizer.from_str(json.dumps(data))


def test_too_small_vocab_is_rejected() -> None:
    with pytest.raises(TokenizerError, match="vocab_size"):
        CodeTokenizer.train_from_iterator(["x"], vocab_size=100)


def test_token_bytes_rejects_ids_outside_the_vocabulary(tokenizer: CodeTokenizer) -> None:
    with pytest.raises(TokenizerError):
        tokenizer.token_bytes(tokenizer.vocab_size)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "codemlm", "tokenizer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_train_from_sources_and_encode(tmp_path: Path) -> None:
    out = tmp_path / "tok.json"
    result = run_cli("train", str(FIXTURE_REPO), "--out", str(out), "--vocab-size", "600")
    assert result.returncode == 0, result.stderr
    trained = CodeTokenizer.from_file(out)
    assert trained.vocab_size <= 600
    source = tmp_path / "snippet.py"
    source.write_text("def hello(name):\n    return name\n", encoding="utf-8")
    shown = run_cli("encode", str(source), "--tokenizer", str(out))
    assert shown.returncode == 0, shown.stderr
    assert '"def"' in shown.stdout and "tokens, 33 bytes" in shown.stdout
    as_json = run_cli("encode", str(source), "--tokenizer", str(out), "--json")
    assert json.loads(as_json.stdout)["offsets"][-1][1] == 33


def test_cli_reports_a_bad_tokenizer_cleanly(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("x = 1\n", encoding="utf-8")
    result = run_cli("encode", str(source), "--tokenizer", str(tmp_path / "missing.json"))
    assert result.returncode == 1
    assert "codemlm: error:" in result.stderr and "Traceback" not in result.stderr


def test_cli_train_from_a_built_corpus(tmp_path: Path) -> None:
    from codemlm.corpus_build import build_corpus

    build_corpus([FIXTURE_REPO], tmp_path / "data", progress=False)
    out = tmp_path / "tok.json"
    result = run_cli("train", "--corpus", str(tmp_path / "data"), "--out", str(out), "--vocab-size", "500")
    assert result.returncode == 0, result.stderr
    assert "files" in result.stdout
    assert CodeTokenizer.from_file(out).vocab_size <= 500


def test_cli_train_needs_exactly_one_kind_of_source(tmp_path: Path) -> None:
    result = run_cli("train", "--out", str(tmp_path / "t.json"))
    assert result.returncode == 1 and "exactly one" in result.stderr
    missing = run_cli("train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "t.json"))
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_name_ids_map_a_leading_space_away(tokenizer: CodeTokenizer) -> None:
    names = tokenizer.name_ids()
    assert names.shape == (tokenizer.vocab_size,)
    (spaced,) = [i for i in tokenizer.encode(" return").ids]
    (bare,) = [i for i in tokenizer.encode("return").ids]
    assert spaced != bare and names[spaced] == bare and names[bare] == bare
    assert (names[:5] == np.arange(5)).all()
    # Every mapping drops exactly one leading space.
    for token_id in np.flatnonzero(names != np.arange(tokenizer.vocab_size)).tolist():
        assert tokenizer.token_bytes(token_id) == b" " + tokenizer.token_bytes(int(names[token_id]))


# Longer texts with indented lines, blank lines of spaces, CRLF and odd whitespace around the
# newlines: where a head could be cut.
line_texts = st.lists(
    st.tuples(st.sampled_from(["", " ", "    ", "\t", "  \t", "\u00a0", "\x1c", " \r"]), texts,
              st.sampled_from(["\n", "\r\n", "\n\n", "  \n", "\n \n"])).map("".join),
    max_size=30,
).map("".join)
SHIPPED_TOKENIZER = Path(__file__).parent.parent / "codemlm" / "default_model" / "tokenizer.json"


@pytest.fixture(scope="module")
def shipped_tokenizer() -> CodeTokenizer:
    return CodeTokenizer.from_file(SHIPPED_TOKENIZER)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(line_texts, min_size=1, max_size=4), max_tokens=st.integers(0, 40), shipped=st.booleans())
def test_heads_are_the_first_tokens_of_the_whole_text(
    tokenizer: CodeTokenizer, shipped_tokenizer: CodeTokenizer, batch: list[str], max_tokens: int, shipped: bool
) -> None:
    used = shipped_tokenizer if shipped else tokenizer
    whole = [ids[:max_tokens].tolist() for ids in used.encode_ids_batch(batch)]
    assert [ids.tolist() for ids in used.encode_ids_heads(batch, max_tokens)] == whole


def test_heads_of_real_code_are_the_first_tokens(shipped_tokenizer: CodeTokenizer) -> None:
    shipped = shipped_tokenizer
    sources = fixture_texts() + [p.read_text(encoding="utf-8") for p in sorted(Path(np.__file__).parent.glob("*.py"))]
    for max_tokens in (8, 126, 500):
        heads = shipped.encode_ids_heads(sources, max_tokens)
        assert [h.tolist() for h in heads] == [ids[:max_tokens].tolist() for ids in shipped.encode_ids_batch(sources)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=line_texts, shipped=st.booleans())
def test_every_head_cut_keeps_the_whole_texts_first_tokens(
    tokenizer: CodeTokenizer, shipped_tokenizer: CodeTokenizer, text: str, shipped: bool
) -> None:
    """The invariant itself, at every place ``_head`` may cut (a head near max_tokens long is
    where a wrong cut would show)."""
    from codemlm.tokenizer import _head

    used = shipped_tokenizer if shipped else tokenizer
    whole = used.encode(text).ids
    heads = sorted({_head(text, chars) for chars in range(1, len(text) + 1)}, key=len)
    for head, ids in zip(heads, used.encode_ids_batch(heads), strict=True):
        assert ids.tolist() == whole[: len(ids)], repr(head[-12:])
