"""Search never queues behind indexing, and never answers a silent empty list while the first
index is being built."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsp_server.live_index import FLUSH_WAIT_SECONDS, LiveIndex
from tests.lsp.harness import RawServer, make_workspace


class GatedEmbedder:
    """An ``codemlm.embedder.Embedder`` whose code embedding waits while its gate is closed:
    a huge buffer's embeddings, taking as long as the test likes."""

    model_id = "test:gated-hash-8"
    dim = 8
    dense_weight = 0.5

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[: self.dim], dtype=np.uint8) for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim) + 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_code(self, texts: Sequence[str]) -> np.ndarray:
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(60)
        return self._vectors(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts)


async def test_a_search_does_not_wait_for_a_buffer_being_embedded(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    embedder = GatedEmbedder()
    live = LiveIndex()
    try:
        await live.open(workspace, index_path=str(tmp_path / "index.sqlite"), embedder=embedder)
        assert live.is_open, live.problem
        await live.update_all()
        embedder.gate.clear()
        live.buffer_changed("huge.py", "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300)))
        started = time.monotonic()
        await asyncio.wait_for(live.flush(), 10)  # starts the buffer's update, which blocks in embedding
        assert await asyncio.to_thread(embedder.waiting.wait, 30)
        results = await asyncio.wait_for(live.search("sub", k=3), 10)
        elapsed = time.monotonic() - started
        assert [r.name for r in results][:1] == ["sub"]
        assert elapsed < FLUSH_WAIT_SECONDS + 5, elapsed
    finally:
        embedder.gate.set()
        live.shutdown()


def test_workspace_symbol_during_the_first_index_is_never_a_silent_empty_list(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    bulk = workspace / "bulk"
    bulk.mkdir()
    for i in range(300):  # enough files that the first walk takes a while
        (bulk / f"mod{i}.py").write_text(f"def helper_{i}(x):\n    return x * {i}\n", encoding="utf-8")
    server = RawServer(tmp_path / "cache")
    try:
        server.request("initialize", {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {},
                                      "initializationOptions": {"modelDir": str(tmp_path / "no-model")}})
        server.send({"method": "initialized", "params": {}})
        reply = server.request("workspace/symbol", {"query": "rb_push"}, timeout=60)  # at once
        names = [s["name"] for s in reply["result"]]
        told = [m for m in server.notifications if m.get("method") == "window/showMessage"
                and "still being indexed" in m["params"]["message"]]
        assert names or told, "an empty answer while indexing, and nobody told"
        if names:
            assert names[0] == "rb_push"
        server.wait_for_notification("codemlm/status", state="no-model", timeout=120)
        final = server.request("workspace/symbol", {"query": "helper_299"})
        assert [s["name"] for s in final["result"]][:1] == ["helper_299"]
    finally:
        assert server.close() == 0


async def test_unsaved_buffers_come_back_after_another_process_reindexes(tmp_path: Path) -> None:
    """A CLI `codemlm index` on the same file writes disk text over the server's unsaved buffer;
    the server's next search notices the foreign write and puts the buffer back."""
    from codemlm.index import RepoIndex

    workspace = make_workspace(tmp_path)
    (workspace / "draft.py").write_text("def old_name(x):\n    return x\n", encoding="utf-8")
    index_path = tmp_path / "index.sqlite"
    live = LiveIndex()
    try:
        await live.open(workspace, index_path=str(index_path), embedder=None)
        assert live.is_open, live.problem
        await live.update_all()
        live.buffer_opened("draft.py", "def brand_new_unsaved_name(x):\n    return x\n")
        await asyncio.wait_for(live.flush(), 10)
        assert [r.name for r in await live.search("brand_new_unsaved_name", k=3)][:1] == ["brand_new_unsaved_name"]

        def other_process_reindex() -> None:  # what `codemlm index --rebuild` does: disk text only
            with RepoIndex.open(workspace, index_path=index_path, rebuild=True) as other:
                other.update()

        await asyncio.to_thread(other_process_reindex)
        await asyncio.wait_for(live.flush(), 10)
        names = [r.name for r in await live.search("brand_new_unsaved_name", k=3)]
        assert names[:1] == ["brand_new_unsaved_name"], names
    finally:
        live.shutdown()


async def test_after_a_walk_the_search_thread_holds_the_postings(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    live = LiveIndex()
    try:
        await live.open(workspace, index_path=str(tmp_path / "index.sqlite"), embedder=None)
        await live.update_all()
        assert [r.name for r in await live.search("rb_push", k=3)][:1] == ["rb_push"]
        assert live._read_index is not None and live._read_index.holds_postings
        live.buffer_changed("fresh.py", "def freshly_typed_helper(x):\n    return x\n")
        await asyncio.wait_for(live.flush(), 10)  # a write after the walk: taken in by the search
        assert [r.name for r in await live.search("freshly_typed_helper", k=3)][:1] == ["freshly_typed_helper"]
    finally:
        live.shutdown()
