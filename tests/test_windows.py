"""The training view: byte spans -> token spans, windows cut at syntax boundaries, the Arrow dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codemlm.config import ChunkingConfig, MaskingConfig
from codemlm.errors import CorpusError
from codemlm.kinds import SpanKind
from codemlm.languages import LANGUAGES, language_for_path
from codemlm.masking import IGNORE_INDEX, MaskingCollator
from codemlm.syntax import ParseResult, parse
from codemlm.tokenizer import CodeTokenizer
from codemlm.windows import (
    TOKENS_FEATURES,
    TrainingWindow,
    byte_spans_to_token_spans,
    cut_points,
    tokenize_corpus,
    windows_for_file,
)

FIXTURE_REPO = Path(__file__).parent / "fixtures" / "multilang_repo"


def fixture_files() -> list[tuple[Path, str, str]]:
    out = []
    for path in sorted(FIXTURE_REPO.rglob("*")):
        lang = language_for_path(path) if path.is_file() else None
        if lang is not None:
            out.append((path, lang.name, path.read_bytes().decode("utf-8", errors="replace")))
    return out


@pytest.fixture(scope="module")
def tokenizer() -> CodeTokenizer:
    return CodeTokenizer.train_from_iterator([t for _, _, t in fixture_files()], vocab_size=1000)


def file_windows(
    tokenizer: CodeTokenizer, text: str, lang: str, chunking: ChunkingConfig
) -> tuple[list[TrainingWindow], ParseResult]:
    parsed = parse(text, lang)
    ids = np.asarray(tokenizer.encode(text).ids, dtype=np.int32)
    starts, ends = tokenizer.byte_offsets(ids)
    windows = windows_for_file(
        text.encode("utf-8"),
        ids,
        starts,
        ends,
        np.array([s.start for s in parsed.spans], dtype=np.int64),
        np.array([s.end for s in parsed.spans], dtype=np.int64),
        np.array([s.kind for s in parsed.spans], dtype=np.int8),
        np.array(parsed.boundaries, dtype=np.int64),
        chunking,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
    )
    return windows, parsed


def test_byte_spans_cover_every_overlapping_token() -> None:
    # Tokens: [0,3) [3,4) [4,8) [8,9) [9,12)
    starts = np.array([0, 3, 4, 8, 9])
    ends = np.array([3, 4, 8, 9, 12])
    first, last = byte_spans_to_token_spans(
        starts, ends, np.array([0, 4, 5, 3, 2, 12, 6]), np.array([3, 8, 6, 9, 4, 12, 6])
    )
    assert list(zip(first.tolist(), last.tolist(), strict=True)) == [
        (0, 1),  # exactly one token
        (2, 3),  # exactly one token
        (2, 3),  # inside a token: that token
        (1, 4),  # three tokens
        (0, 2),  # starts inside token 0
        (5, 5),  # at the end: empty
        (2, 2),  # empty span: empty
    ]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 3000),
    capacity=st.integers(1, 300),
    slack=st.floats(0.0, 0.99),
    data=st.data(),
)
def test_cut_points_tile_and_respect_capacity(
    n: int, capacity: int, slack: float, data: st.DataObject
) -> None:
    boundaries = np.array(
        sorted(set(data.draw(st.lists(st.integers(1, max(1, n)), max_size=60)))), dtype=np.int64
    )
    lines = np.array(
        sorted(set(data.draw(st.lists(st.integers(1, max(1, n)), max_size=200)))), dtype=np.int64
    )
    pieces = cut_points(n, capacity, boundaries, lines, slack)
    position = 0
    for a, b in pieces:
        assert a == position and 0 < b - a <= capacity
        position = b
    assert position == n
    slack_tokens = int(np.floor(capacity * slack))
    for a, b in pieces[:-1]:
        in_slack = boundaries[(boundaries >= a + capacity - slack_tokens) & (boundaries <= a + capacity)]
        if slack_tokens and in_slack.size:
            assert b == in_slack.max()  # the latest syntax boundary in the slack wins
        elif b != a + capacity:
            assert b in set(lines.tolist()) and b >= a + max(1, capacity // 2)


def test_windows_by_hand_cut_at_definition_boundaries(tokenizer: CodeTokenizer) -> None:
    text = "".join(f"def f{i}(a, b):\n    return a + b * {i}\n\n" for i in range(30))
    data = text.encode()
    defs = [data.index(f"def f{i}(".encode()) for i in range(30)]
    ends = [*defs[1:], len(data)]
    idents = [(d + 4, d + 4 + len(f"f{i}")) for i, d in enumerate(defs)]
    spans = [(s, e, SpanKind.DEFINITION) for s, e in zip(defs, ends, strict=True)]
    spans += [(s, e, SpanKind.IDENTIFIER) for s, e in idents]
    ids = np.asarray(tokenizer.encode(text).ids, dtype=np.int32)
    t_starts, t_ends = tokenizer.byte_offsets(ids)
    chunking = ChunkingConfig(seq_len=64, min_tokens=1, boundary_slack=0.5)
    windows = windows_for_file(
        data,
        ids,
        t_starts,
        t_ends,
        np.array([s for s, _, _ in spans]),
        np.array([e for _, e, _ in spans]),
        np.array([k for _, _, k in spans], dtype=np.int8),
        np.array(ends[:-1]),
        chunking,
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
    )
    assert len(windows) > 3
    for w in windows:
        body = tokenizer.decode(w.input_ids.tolist())
        # Every window is whole definitions: it starts at "def" and ends after a blank line.
        assert body.startswith("def f") and body.endswith("\n\n"), body
        assert len(w.input_ids) <= 64
        kinds = w.span_kind.tolist()
        assert kinds.count(SpanKind.DEFINITION) == kinds.count(SpanKind.IDENTIFIER) == body.count("def f")
    assert "".join(tokenizer.decode(w.input_ids.tolist()) for w in windows) == text


@pytest.mark.parametrize("seq_len", [24, 64, 512])
def test_windows_over_real_parses_of_every_language(tokenizer: CodeTokenizer, seq_len: int) -> None:
    chunking = ChunkingConfig(seq_len=seq_len, min_tokens=0)
    seen_languages = set()
    for path, lang, text in fixture_files():
        windows, parsed = file_windows(tokenizer, text, lang, chunking)
        seen_languages.add(lang)
        data = text.encode("utf-8")
        # min_tokens=0: the windows hold the whole file, in order.
        assert "".join(tokenizer.decode(w.input_ids.tolist()) for w in windows) == text, path
        kept = 0
        for w in windows:
            ids = w.input_ids
            assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id and len(ids) <= seq_len
            assert not set(ids[1:-1].tolist()) & tokenizer.special_ids
            assert ((w.span_start >= 1) & (w.span_end <= len(ids) - 1) & (w.span_start < w.span_end)).all()
            # The window's recorded byte range is exactly the bytes its tokens stand for.
            assert data[w.start_byte : w.end_byte] == tokenizer.decode_bytes(ids.tolist())
            kept += len(w.span_start)
        # Spans wholly inside one window are all kept; with one big window, all non-empty spans.
        if len(windows) == 1:
            assert kept == sum(s.end > s.start for s in parsed.spans), path
    assert seen_languages == set(LANGUAGES)  # the fixture repository has a file of each


def test_kept_spans_map_back_to_their_bytes(tokenizer: CodeTokenizer) -> None:
    path = FIXTURE_REPO / "web" / "api.ts"
    text = path.read_text(encoding="utf-8")
    windows, parsed = file_windows(tokenizer, text, "typescript", ChunkingConfig(seq_len=4096, min_tokens=0))
    (window,) = windows
    data = text.encode()
    offsets = np.concatenate(([0], np.cumsum(tokenizer.byte_lengths[window.input_ids])))
    by_range: dict[tuple[int, int], set[int]] = {}
    for s, e, k in zip(
        window.span_start.tolist(), window.span_end.tolist(), window.span_kind.tolist(), strict=True
    ):
        by_range.setdefault((int(offsets[s]), int(offsets[e])), set()).add(k)
    for span in parsed.spans:
        # The token range covers the span's bytes and at most a token's worth more on each side.
        matches = [
            r
            for r, kinds in by_range.items()
            if span.kind in kinds and r[0] <= span.start and r[1] >= span.end
        ]
        assert matches, (span, data[span.start : span.end])


def test_short_windows_are_dropped(tokenizer: CodeTokenizer) -> None:
    windows, _ = file_windows(tokenizer, "x = 1\n", "python", ChunkingConfig(seq_len=64, min_tokens=16))
    assert windows == []
    windows, _ = file_windows(tokenizer, "x = 1\n", "python", ChunkingConfig(seq_len=64, min_tokens=1))
    assert len(windows) == 1


@pytest.mark.parametrize("strategy", ["token", "identifier", "ast", "mixed"])
def test_collator_masks_real_windows_of_every_language(tokenizer: CodeTokenizer, strategy: str) -> None:
    rows: list[dict[str, object]] = []
    for path, lang, text in fixture_files():
        for w in file_windows(tokenizer, text, lang, ChunkingConfig(seq_len=128, min_tokens=4))[0]:
            rows.append(
                {
                    "input_ids": w.input_ids,
                    "span_start": w.span_start,
                    "span_end": w.span_end,
                    "span_kind": w.span_kind,
                    "index": len(rows),
                    "language": lang,
                    "path": str(path),
                }
            )
    collator = MaskingCollator(
        MaskingConfig(strategy=strategy, rate=0.15),
        pad_id=tokenizer.pad_id,
        mask_id=tokenizer.mask_id,
        vocab_size=tokenizer.vocab_size,
        special_ids=tokenizer.special_ids,
    )
    batch = collator(rows)
    masked = batch["labels"] != IGNORE_INDEX
    maskable = int(batch["attention_mask"].sum()) - 2 * len(rows)
    assert abs(int(masked.sum()) - 0.15 * maskable) <= len(rows)  # rounding per row
    if strategy in ("identifier", "ast"):
        # Real parses give real spans: most of the budget goes to syntax spans, not runs.
        assert (batch["mask_kind"][masked] > 0).float().mean() > 0.5
    if strategy == "identifier":
        assert set(batch["mask_kind"][masked].unique().tolist()) <= {0, int(SpanKind.IDENTIFIER)}


def build_files_dataset(root: Path, tmp: Path) -> Path:
    from datasets import Dataset, DatasetDict, Features, Sequence, Value

    rows: dict[str, list] = {
        k: []
        for k in ("repo", "path", "language", "text", "span_start", "span_end", "span_kind", "boundaries")
    }
    for path, lang, text in fixture_files():
        parsed = parse(text, lang)
        rows["repo"].append("multilang_repo")
        rows["path"].append(path.relative_to(root).as_posix())
        rows["language"].append(lang)
        rows["text"].append(text)
        rows["span_start"].append([s.start for s in parsed.spans])
        rows["span_end"].append([s.end for s in parsed.spans])
        rows["span_kind"].append([int(s.kind) for s in parsed.spans])
        rows["boundaries"].append(parsed.boundaries)
    features = Features(
        {
            "repo": Value("string"),
            "path": Value("string"),
            "language": Value("string"),
            "text": Value("string"),
            "span_start": Sequence(Value("int32")),
            "span_end": Sequence(Value("int32")),
            "span_kind": Sequence(Value("int8")),
            "boundaries": Sequence(Value("int32")),
        }
    )
    full = Dataset.from_dict(rows, features=features)
    out = tmp / "files"
    DatasetDict(
        {"train": full.select(range(3, len(full))), "validation": full.select(range(3))}
    ).save_to_disk(str(out))
    return out


def test_tokenize_corpus_writes_the_training_view(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from datasets import load_from_disk

    files_dir = build_files_dataset(FIXTURE_REPO, tmp_path)
    chunking = ChunkingConfig(seq_len=96, min_tokens=8)
    stats = tokenize_corpus(files_dir, tokenizer, chunking, tmp_path / "tokens")
    view = load_from_disk(str(tmp_path / "tokens"))
    assert set(view) == {"train", "validation"}
    train = view["train"]
    assert train.column_names == ["input_ids", "span_start", "span_end", "span_kind", "language", "path"]
    assert train.features["input_ids"].feature.dtype == "int32"
    assert train.features["span_kind"].feature.dtype == "int8"
    assert stats["splits"]["train"]["windows"] == len(train) > 10
    assert stats["splits"]["train"]["tokens"] == sum(len(x) for x in train["input_ids"])
    # The dataset rows equal the pure function's windows, file by file.
    expected = []
    for _, lang, text in fixture_files()[3:]:
        expected.extend(file_windows(tokenizer, text, lang, chunking)[0])
    assert len(expected) == len(train)
    for w, row in zip(expected, train, strict=True):
        assert row["input_ids"] == w.input_ids.tolist()
        assert row["span_start"] == w.span_start.tolist() and row["span_kind"] == w.span_kind.tolist()
    assert set(train["language"]) >= {"python", "go", "typescript", "cpp"}
    # The input stays as built (no map cache files beside it) and no staging is left over.
    assert not list(files_dir.rglob("cache-*.arrow"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files", "tokens"]
    # Building again replaces the view; a folder that is not a token dataset is refused.
    again = tokenize_corpus(
        files_dir, tokenizer, ChunkingConfig(seq_len=512, min_tokens=8), tmp_path / "tokens"
    )
    assert (
        len(load_from_disk(str(tmp_path / "tokens"))["train"])
        == again["splits"]["train"]["windows"]
        < len(train)
    )
    (tmp_path / "not_tokens").mkdir()
    (tmp_path / "not_tokens" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(CorpusError, match="refusing"):
        tokenize_corpus(files_dir, tokenizer, chunking, tmp_path / "not_tokens")
    assert (tmp_path / "not_tokens" / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert set(view["validation"]["language"]) == {"python", "rust", "java"}


def test_tokenize_corpus_rejects_a_missing_or_wrong_dataset(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    with pytest.raises(CorpusError):
        tokenize_corpus(tmp_path / "nothing", tokenizer, ChunkingConfig(), tmp_path / "out")
    DatasetDict({"train": Dataset.from_dict({"text": ["x"]})}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(CorpusError, match="lacks column"):
        tokenize_corpus(tmp_path / "bad", tokenizer, ChunkingConfig(), tmp_path / "out")


@pytest.mark.slow
def test_tokenize_corpus_with_two_processes_matches_one(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from datasets import load_from_disk

    files_dir = build_files_dataset(FIXTURE_REPO, tmp_path)
    chunking = ChunkingConfig(seq_len=64, min_tokens=8)
    tokenize_corpus(files_dir, tokenizer, chunking, tmp_path / "one")
    tokenize_corpus(files_dir, tokenizer, chunking, tmp_path / "two", num_proc=2, batch_size=4)
    one, two = load_from_disk(str(tmp_path / "one")), load_from_disk(str(tmp_path / "two"))
    assert one["train"]["input_ids"] == two["train"]["input_ids"]


def test_tokenize_corpus_handles_an_empty_split(tokenizer: CodeTokenizer, tmp_path: Path) -> None:
    from datasets import DatasetDict, load_from_disk

    files = load_from_disk(str(build_files_dataset(FIXTURE_REPO, tmp_path)))
    DatasetDict({"train": files["train"], "validation": files["validation"].select([])}).save_to_disk(
        str(tmp_path / "files_empty_validation"), num_shards={"validation": 1}
    )
    stats = tokenize_corpus(
        tmp_path / "files_empty_validation", tokenizer, ChunkingConfig(), tmp_path / "tokens"
    )
    assert stats["splits"]["validation"] == {
        "files": 0,
        "windows": 0,
        "tokens": 0,
        "mean_window_tokens": 0.0,
        "seconds": stats["splits"]["validation"]["seconds"],
    }
    assert len(load_from_disk(str(tmp_path / "tokens"))["validation"]) == 0
    # No window can reach min_tokens (510 file tokens at most): empty splits, yet loadable.
    stats = tokenize_corpus(
        files_dir_of(tmp_path), tokenizer, ChunkingConfig(seq_len=512, min_tokens=512), tmp_path / "t2"
    )
    assert stats["splits"]["validation"]["windows"] == stats["splits"]["train"]["windows"] == 0
    for split in ("train", "validation"):
        reloaded = load_from_disk(str(tmp_path / "t2"))[split]
        assert len(reloaded) == 0 and reloaded.column_names == list(TOKENS_FEATURES)


def files_dir_of(tmp_path: Path) -> Path:
    return tmp_path / "files"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300),
    data=st.data(),
    seq_len=st.integers(8, 64),
)
def test_random_byte_spans_map_to_the_minimal_covering_tokens(
    tokenizer: CodeTokenizer, text: str, data: st.DataObject, seq_len: int
) -> None:
    raw = text.encode("utf-8")
    pairs = data.draw(st.lists(st.tuples(st.integers(0, len(raw)), st.integers(0, len(raw))), max_size=30))
    spans = [(min(a, b), max(a, b)) for a, b in pairs]
    ids = np.asarray(tokenizer.encode(text).ids, dtype=np.int32)
    starts, ends = tokenizer.byte_offsets(ids)
    windows = windows_for_file(
        raw,
        ids,
        starts,
        ends,
        np.array([s for s, _ in spans], dtype=np.int64),
        np.array([e for _, e in spans], dtype=np.int64),
        np.full(len(spans), SpanKind.EXPRESSION, dtype=np.int8),
        np.array(
            data.draw(st.lists(st.integers(0, len(raw)), max_size=10, unique=True)) or [0], dtype=np.int64
        ),
        ChunkingConfig(seq_len=seq_len, min_tokens=0),
        cls_id=tokenizer.cls_id,
        sep_id=tokenizer.sep_id,
    )
    assert b"".join(tokenizer.decode_bytes(w.input_ids.tolist()) for w in windows) == raw
    expected_total = 0
    for w in windows:
        # Byte offset of each token boundary inside this window.
        bounds = w.start_byte + np.concatenate(([0], np.cumsum(tokenizer.byte_lengths[w.input_ids[1:-1]])))
        got = sorted(zip((w.span_start - 1).tolist(), (w.span_end - 1).tolist(), strict=True))
        want = []
        for s, e in spans:
            if e <= s or s < w.start_byte or e > w.end_byte:
                continue
            first = int(np.searchsorted(bounds, s, side="right")) - 1  # token holding byte s
            last = int(np.searchsorted(bounds, e, side="left"))  # one past the token holding byte e-1
            want.append((first, last))
        # A span inside the window's bytes may still start/end in a token cut off by the window.
        inside = [(a, b) for a, b in want if a >= 0 and b <= len(w.input_ids) - 2]
        assert got == sorted(inside)
        expected_total += len(inside)
    assert expected_total == sum(len(w.span_start) for w in windows)
