"""Source trees nobody vetted: bad ignore lines, non-UTF-8 names, deep trees, FIFOs, big files.

Each case is counted and skipped; the walk (and ``corpus build``) always finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from codemlm.cli import main
from codemlm.config import CorpusConfig
from codemlm.errors import InputError
from codemlm.gitignore import IGNORE_FILE_MAX_BYTES
from codemlm.regular_files import FileTooLargeError, read_regular_file
from codemlm.sources import CorpusStats, iter_repository

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging forever if the code under test blocks (in a FIFO open, say)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _walk(root: Path, config: CorpusConfig | None = None) -> tuple[dict[str, str], CorpusStats]:
    stats = CorpusStats()
    with _deadline(20):
        files = {f.path: f.text for f in iter_repository(root, config or CorpusConfig(), stats)}
    return files, stats


def _tree(root: Path) -> Path:
    root.mkdir()
    (root / "keep.py").write_text("def keep():\n    return 1\n")
    (root / "drop.tmp.py").write_text("def drop():\n    return 2\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.py").write_text("def inner():\n    return 3\n")
    return root


# --- .gitignore lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["!", "\\", "[z-a]", "[9-0].py", "foo\\"])
def test_a_bad_ignore_line_is_skipped_and_the_rest_still_apply(tmp_path, bad):
    root = _tree(tmp_path / "repo")
    (root / ".gitignore").write_text(f"{bad}\n*.tmp.py\n")
    files, stats = _walk(root)
    assert set(files) == {"keep.py", "sub/inner.py"}
    assert stats.counts["bad_ignore_line"] == 1 and stats.counts["gitignored"] == 1


def test_bad_lines_in_nested_ignore_files_and_info_exclude(tmp_path):
    root = _tree(tmp_path / "repo")
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "info" / "exclude").write_text("[z-a]\n!\n")
    (root / "sub" / ".gitignore").write_text("[9-0].py\ninner.py\n")
    (root / ".gitignore").write_bytes(b"\xff\xfe not utf-8 \\\n*.tmp.py\n")
    files, stats = _walk(root)
    assert set(files) == {"keep.py"}
    assert stats.counts["bad_ignore_line"] == 4


# --- names that are not UTF-8 --------------------------------------------------------------------


def _latin1_name(directory: Path, name: bytes, *, folder: bool = False) -> bool:
    path = os.path.join(os.fsencode(directory), name)
    try:
        if folder:
            os.mkdir(path)
            fd = os.open(os.path.join(path, b"inside.py"), os.O_WRONLY | os.O_CREAT)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    except OSError:  # a filesystem that insists on UTF-8 names (APFS, most Windows ones)
        return False
    os.write(fd, b"def caf():\n    return 4\n")
    os.close(fd)
    return True


def test_names_that_are_not_utf8_are_skipped_and_counted(tmp_path):
    root = _tree(tmp_path / "repo")
    if not _latin1_name(root, b"caf\xe9.py") or not _latin1_name(root / "sub", b"d\xe9j\xe0", folder=True):
        pytest.skip("this filesystem refuses names that are not UTF-8")
    files, stats = _walk(root)
    assert set(files) == {"keep.py", "drop.tmp.py", "sub/inner.py"}
    assert stats.counts["bad_name"] == 2


def test_corpus_build_survives_a_hostile_tree(tmp_path, capsys):
    root = _tree(tmp_path / "repo")
    (root / ".gitignore").write_text("!\n[z-a]\n*.tmp.py\n")
    latin1 = _latin1_name(root, b"caf\xe9.py")
    out = tmp_path / "data"
    code = main(["corpus", "build", str(root), "--out", str(out), "--no-tokenize", "--quiet", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["counts"]["kept"] == 2 and data["counts"]["bad_ignore_line"] == 2
    assert data["counts"]["bad_name"] == (1 if latin1 else 0)
    assert json.loads((out / "stats.json").read_text())["counts"] == data["counts"]


def test_a_source_root_with_a_latin1_name_is_stored_printably(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"r\xe9po")
    try:
        os.mkdir(path)
    except OSError:
        pytest.skip("this filesystem refuses names that are not UTF-8")
    Path(os.fsdecode(path), "a.py").write_text("def a():\n    return 5\n")
    stats = CorpusStats()
    (source,) = list(iter_repository(os.fsdecode(path), CorpusConfig(), stats))
    source.repo.encode("utf-8")  # no surrogates left: Arrow and SQLite can store it
    assert source.path == "a.py"


# --- depth --------------------------------------------------------------------------------------


def test_a_tree_1200_directories_deep_is_walked(tmp_path):
    root = tmp_path / "deep"
    root.mkdir()
    levels = [root]
    for _ in range(1200):  # one level at a time: pathlib's mkdir(parents=True) recurses itself
        levels.append(levels[-1] / "d")
        os.mkdir(levels[-1])
    (levels[-1] / "bottom.py").write_text("def bottom():\n    return 6\n")
    (root / "top.py").write_text("def top():\n    return 7\n")
    try:
        files, stats = _walk(root)
        assert set(files) == {"top.py", "/".join(["d"] * 1200) + "/bottom.py"}
        assert stats.counts["unreadable"] == 0
    finally:
        # shutil.rmtree recurses too: pytest's own clean-up of old temporary folders would
        # hit the recursion limit on this tree, so take it down bottom-up here.
        (levels[-1] / "bottom.py").unlink()
        for level in reversed(levels[1:]):
            os.rmdir(level)


def test_walk_order_is_depth_first_by_name(tmp_path):
    root = tmp_path / "order"
    for rel in ("b.py", "a/z.py", "a/b/c.py", "a.py", "c/a.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"NAME = {rel!r}\n")
    files, _stats = _walk(root)
    # Name order at each level, each directory walked where its name sorts ("a" < "a.py").
    assert list(files) == ["a/b/c.py", "a/z.py", "a.py", "b.py", "c/a.py"]


# --- FIFOs and other files that are not regular --------------------------------------------------


@needs_fifo
def test_a_fifo_named_gitignore_never_blocks_the_walk(tmp_path):
    root = _tree(tmp_path / "repo")
    os.mkfifo(root / ".gitignore")
    os.mkfifo(root / "sub" / ".gitignore")
    files, stats = _walk(root)
    assert set(files) == {"keep.py", "drop.tmp.py", "sub/inner.py"}
    assert stats.counts["unreadable"] == 2


@needs_fifo
def test_a_fifo_as_git_info_exclude_never_blocks_the_walk(tmp_path):
    root = _tree(tmp_path / "repo")
    (root / ".git" / "info").mkdir(parents=True)
    os.mkfifo(root / ".git" / "info" / "exclude")
    (root / ".gitignore").write_text("*.tmp.py\n")
    files, stats = _walk(root)
    assert set(files) == {"keep.py", "sub/inner.py"}
    assert stats.counts["unreadable"] == 1


@needs_fifo
def test_a_fifo_given_as_the_source_is_counted(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    files, stats = _walk(tmp_path / "pipe.py")
    assert files == {} and stats.counts["unreadable"] == 1


def test_an_oversized_ignore_file_is_skipped(tmp_path):
    root = _tree(tmp_path / "repo")
    (root / ".gitignore").write_text("*.tmp.py\n" + "#" * IGNORE_FILE_MAX_BYTES)
    files, stats = _walk(root)
    assert "drop.tmp.py" in files and stats.counts["unreadable"] == 1


def test_a_directory_named_gitignore_is_not_read(tmp_path):
    root = _tree(tmp_path / "repo")
    (root / ".gitignore").mkdir()
    files, stats = _walk(root)
    assert set(files) == {"keep.py", "drop.tmp.py", "sub/inner.py"}
    assert stats.counts["unreadable"] == 1


# --- read_regular_file ---------------------------------------------------------------------------


def test_read_regular_file_reads_within_the_cap(tmp_path):
    path = tmp_path / "a.py"
    path.write_bytes(b"x = 1\n")
    assert read_regular_file(path, max_bytes=6) == b"x = 1\n"
    with pytest.raises(FileTooLargeError):
        read_regular_file(path, max_bytes=5)
    with pytest.raises(InputError, match="cannot open"):
        read_regular_file(tmp_path / "missing.py", max_bytes=100)
    with pytest.raises(InputError, match="not a regular file"):
        read_regular_file(tmp_path, max_bytes=100)


@needs_fifo
def test_read_regular_file_refuses_a_fifo_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with _deadline(10), pytest.raises(InputError, match="not a regular file"):
        read_regular_file(tmp_path / "pipe", max_bytes=100)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_read_regular_file_refuses_a_device():
    with _deadline(10), pytest.raises(InputError, match="not a regular file"):
        read_regular_file("/dev/zero", max_bytes=100)


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW")
def test_read_regular_file_can_refuse_links(tmp_path):
    (tmp_path / "real.py").write_text("x = 1\n")
    os.symlink(tmp_path / "real.py", tmp_path / "link.py")
    assert read_regular_file(tmp_path / "link.py", max_bytes=100) == b"x = 1\n"
    with pytest.raises(InputError):
        read_regular_file(tmp_path / "link.py", max_bytes=100, follow_symlinks=False)


# --- the CLI's own reads ------------------------------------------------------------------------


@needs_fifo
def test_corpus_stats_refuses_a_fifo_in_place_of_stats_json(tmp_path, capsys):
    os.mkfifo(tmp_path / "stats.json")
    with _deadline(20):
        assert main(["corpus", "stats", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not a regular file" in err and "Traceback" not in err


@needs_fifo
def test_tokenizer_encode_refuses_a_fifo(tmp_path, capsys):
    from codemlm.tokenizer import CodeTokenizer

    tokenizer = CodeTokenizer.train_from_iterator(["def f(x):\n    return x + 1\n"] * 20, vocab_size=300)
    tokenizer.save(tmp_path / "tokenizer.json")
    os.mkfifo(tmp_path / "pipe.py")
    with _deadline(20):
        code = main(["tokenizer", "encode", str(tmp_path / "pipe.py"), "--tokenizer", str(tmp_path / "tokenizer.json")])
    assert code == 1
    assert "not a regular file" in capsys.readouterr().err
