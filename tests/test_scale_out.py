"""Scale-out and faults on real components: a real Chroma server (`chroma run`), real API
processes (uvicorn) sharing it, and a real `rag ingest` killed with SIGKILL halfway.

Everything listens on free loopback ports; every process is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.service import RAGService

from .conftest import ROOT, free_port, require, wait_ready

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CHROMA = BIN / "chroma"
CHROMA_RUN = (CHROMA, "run", "--path")
UVICORN = (sys.executable, "-m", "uvicorn", "--factory", "api.app:app_factory")
KEY = "scale-out-key"
START_TIMEOUT_S = 180.0  # an API process loads the embedder (10-20 s alone, more on 2 busy cores)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


class ChromaServer:
    """`chroma run` on a fixed loopback port and folder; can be stopped and started again."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder = folder
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CHROMA_RUN, str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"chroma exited:\n{_tail(self.log)}"
            assert time.monotonic() < deadline, f"chroma did not start:\n{_tail(self.log)}"
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    require(CHROMA.exists(), f"the chromadb CLI ({CHROMA}) is not installed")
    folder = tmp_path_factory.mktemp("chroma-server")
    server = ChromaServer(folder / "db", folder / "chroma.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _env(data_dir: Path, chroma_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(data_dir),
        RAG_CHROMA_URL=chroma_url,
        RAG_LLM__BACKEND="extractive",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )
    return env


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


def _start_api(folder: Path, chroma_url: str) -> Replica:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*UVICORN, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=folder,  # no .env from the repo: the settings come from the env below
            env=_env(folder / "data", chroma_url, RAG_API_KEYS=KEY, PYTHONPATH=str(ROOT)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Replica(proc, f"http://127.0.0.1:{port}", log)


def _wait_ready(replica: Replica, deadline: float) -> None:
    wait_ready(replica.url, replica.proc, replica.log, deadline)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, chroma: ChromaServer
) -> Iterator[tuple[Replica, Replica]]:
    """Two API processes, each with a data dir of its own, sharing the one Chroma server."""
    folder = tmp_path_factory.mktemp("replicas")
    started: list[Replica] = []
    try:
        for name in ("a", "b"):
            started.append(_start_api(folder / name, chroma.url))
        deadline = time.monotonic() + START_TIMEOUT_S
        for r in started:
            _wait_ready(r, deadline)
        yield started[0], started[1]
    finally:
        for r in started:
            _stop(r.proc)


def _client(replica: Replica) -> httpx.Client:
    return httpx.Client(
        base_url=replica.url, headers={"authorization": f"Bearer {KEY}"}, timeout=120
    )


DOC_NAME = "qinghe_2031.txt"
DOC_ID = "qinghe_2031"
DOC_TEXT = (
    "青禾市2031年信访工作情况通报\n\n"
    "2031年，青禾市信访总量同比下降了37.5%，全年共受理群众来信来访1234件。"
    "青禾市集体访人次同比下降了41%，越级上访明显减少。\n"
)
QUESTION = "青禾市2031年信访总量同比下降了多少？"


def _ask(client: httpx.Client) -> dict[str, Any]:
    r = client.post("/v1/chat", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _search_doc_ids(client: httpx.Client, query: str) -> list[str]:
    r = client.post("/v1/search", json={"query": query, "top_k": 5})
    assert r.status_code == 200, r.text
    return [h["doc_id"] for h in r.json()["hits"]]


def test_replicas_share_one_chroma_server(replicas: tuple[Replica, Replica]) -> None:
    """Ingest through one process, answer through the other at once; delete likewise."""
    a, b = replicas
    with _client(a) as ca, _client(b) as cb:
        # B builds its lexical index and fact table before the upload: they must not go stale.
        assert DOC_ID not in _search_doc_ids(cb, "青禾市信访总量")
        assert _ask(cb)["refused"]

        up = ca.post("/v1/documents", files={"file": (DOC_NAME, DOC_TEXT.encode(), "text/plain")})
        assert up.status_code == 200, up.text
        assert up.json()["documents"][0]["status"] == "added"

        assert DOC_ID in [d["doc_id"] for d in cb.get("/v1/documents").json()["documents"]]
        assert _search_doc_ids(cb, "青禾市信访总量")[0] == DOC_ID
        answer = _ask(cb)
        assert not answer["refused"], answer
        assert "37.5%" in answer["answer"]
        assert answer["citations"] and answer["citations"][0]["doc_id"] == DOC_ID
        assert cb.get(f"/v1/documents/{DOC_ID}").json()["text"] == DOC_TEXT

        deleted = ca.delete(f"/v1/documents/{DOC_ID}")
        assert deleted.status_code == 200, deleted.text

        assert DOC_ID not in _search_doc_ids(cb, "青禾市信访总量")
        answer = _ask(cb)
        assert answer["refused"], answer
        assert DOC_ID not in {c["doc_id"] for c in answer["citations"]}
        assert DOC_ID not in {p["doc_id"] for p in answer["passages"]}
        assert cb.get(f"/v1/documents/{DOC_ID}").status_code == 404


def _kb_hits(client: httpx.Client, kb: str, mode: str) -> httpx.Response:
    return client.post(
        "/v1/search", json={"query": "青禾市信访总量", "top_k": 5, "mode": mode, "kbs": [kb]}
    )


def test_kbs_across_replicas_deletes_are_immediate(replicas: tuple[Replica, Replica]) -> None:
    """A KB made, filled, emptied and deleted through one replica is seen so at once by the
    other, on the lexical and the dense side, and in answers."""
    a, b = replicas
    with _client(a) as ca, _client(b) as cb:
        assert ca.post("/v1/kbs", json={"name": "team"}).status_code == 201
        assert "team" in [k["name"] for k in cb.get("/v1/kbs").json()["kbs"]]
        for mode in ("bm25", "dense"):  # B's indexes of the empty KB, built before the upload
            assert _kb_hits(cb, "team", mode).json()["hits"] == []
        up = ca.post(
            "/v1/kbs/team/documents",
            files={"file": (DOC_NAME, DOC_TEXT.encode(), "text/plain")},
        )
        assert up.status_code == 200, up.text
        for mode in ("bm25", "dense"):
            hits = _kb_hits(cb, "team", mode).json()["hits"]
            assert hits and hits[0]["doc_id"] == DOC_ID and hits[0]["kb"] == "team", hits
        asked = cb.post("/v1/chat", json={"question": QUESTION, "kbs": ["team"]}).json()
        assert "37.5%" in asked["answer"] and asked["citations"][0]["kb"] == "team", asked
        assert DOC_ID not in _search_doc_ids(cb, "青禾市信访总量")  # not in the default KB

        assert ca.delete(f"/v1/kbs/team/documents/{DOC_ID}").status_code == 200
        for mode in ("bm25", "dense", "hybrid"):
            assert _kb_hits(cb, "team", mode).json()["hits"] == [], mode
        asked = cb.post("/v1/chat", json={"question": QUESTION, "kbs": ["team"]}).json()
        assert asked["refused"] and not asked["citations"], asked

        ca.post(
            "/v1/kbs/team/documents",
            files={"file": (DOC_NAME, DOC_TEXT.encode(), "text/plain")},
        ).raise_for_status()
        assert _kb_hits(cb, "team", "bm25").json()["hits"]
        assert ca.delete("/v1/kbs/team").status_code == 200
        gone = _kb_hits(cb, "team", "bm25")
        assert gone.status_code == 404 and "team" in gone.json()["error"]["message"], gone.text
        chat = cb.post("/v1/chat", json={"question": QUESTION, "kbs": ["team"], "stream": True})
        assert chat.status_code == 404, chat.text
        assert ca.post("/v1/kbs", json={"name": "team"}).status_code == 201  # made again: empty
        for mode in ("bm25", "dense"):
            assert _kb_hits(cb, "team", mode).json()["hits"] == [], mode
        ca.delete("/v1/kbs/team").raise_for_status()


def test_replicas_started_together_on_a_fresh_server_all_serve(
    tmp_path: Path, seeded: RAGService
) -> None:
    """Open-or-create is atomic: eight stores opened at one instant (a barrier) against a fresh
    Chroma server get one collection pair between them, and four API processes started at once
    against another fresh server all come up, serve, and see each other's writes."""
    require(CHROMA.exists(), f"the chromadb CLI ({CHROMA}) is not installed")
    import threading

    from rag.store import ChromaStore

    servers = [ChromaServer(tmp_path / f"db{i}", tmp_path / f"chroma{i}.log") for i in (1, 2)]
    started: list[Replica] = []
    try:
        for server in servers:
            server.start()
        settings = seeded.settings.model_copy(update={"chroma_url": servers[0].url})
        barrier = threading.Barrier(8)
        opened: list[ChromaStore] = []
        errors: list[BaseException] = []

        def open_store() -> None:
            barrier.wait()
            try:
                opened.append(ChromaStore(settings, seeded.embedder))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert len({s.chunks.id for s in opened}) == 1 and len({s.docs.id for s in opened}) == 1

        for i in range(4):
            started.append(_start_api(tmp_path / f"api{i}", servers[1].url))
        deadline = time.monotonic() + START_TIMEOUT_S * 2  # four embedders load on two cores
        for r in started:
            _wait_ready(r, deadline)
        clients = [_client(r) for r in started]
        try:
            up = clients[0].post(
                "/v1/documents", files={"file": (DOC_NAME, DOC_TEXT.encode(), "text/plain")}
            )
            assert up.status_code == 200, up.text
            for c in clients:
                assert _search_doc_ids(c, "青禾市信访总量")[0] == DOC_ID
            assert clients[3].delete(f"/v1/documents/{DOC_ID}").status_code == 200
            for c in clients:
                assert DOC_ID not in _search_doc_ids(c, "青禾市信访总量")
        finally:
            for c in clients:
                c.close()
        assert all(r.proc.poll() is None for r in started)
    finally:
        for r in started:
            _stop(r.proc)
        for server in servers:
            server.stop()


def _assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["type"] == "unavailable", body
    assert "Chroma server" in body["error"]["message"]


def test_chroma_down_is_503_and_recovers_without_restart(
    replicas: tuple[Replica, Replica], chroma: ChromaServer
) -> None:
    a, _ = replicas
    with _client(a) as ca:
        up = ca.post("/v1/documents", files={"file": (DOC_NAME, DOC_TEXT.encode(), "text/plain")})
        assert up.status_code == 200, up.text
        chroma.stop()
        try:
            assert ca.get("/healthz").status_code == 200  # alive, just not ready
            ready = ca.get("/readyz")
            assert ready.status_code == 503 and "error" in ready.json(), ready.text
            _assert_unavailable(ca.post("/v1/chat", json={"question": QUESTION}))
            _assert_unavailable(ca.post("/v1/search", json={"query": "青禾市"}))
            _assert_unavailable(ca.get("/v1/documents"))
            _assert_unavailable(
                ca.post("/v1/documents", files={"file": ("x.txt", "内容".encode(), "text/plain")})
            )
        finally:
            chroma.start()  # same port, same folder
        assert ca.get("/readyz").status_code == 200
        answer = _ask(ca)
        assert "37.5%" in answer["answer"] and answer["citations"][0]["doc_id"] == DOC_ID
        assert a.proc.poll() is None  # the same process throughout
        assert ca.delete(f"/v1/documents/{DOC_ID}").status_code == 200


# -- kill -9 in the middle of `rag ingest` -------------------------------------------------------

N_DOCS = 30


def _write_corpus(folder: Path) -> dict[str, str]:
    """N small documents, each with a token of its own; returns doc_id → its token."""
    folder.mkdir(parents=True)
    tokens = {}
    for i in range(N_DOCS):
        token = f"tok{i:03d}"  # one jieba token, in this document only
        city = f"测试{i:03d}市"
        paragraphs = [
            f"{city}第{k}季度工作通报。{token}的{city}本季度受理来信{100 + i + k}件，"
            f"同比下降了{(i + k) % 50 + 1}%。各部门按照要求落实责任，推进矛盾纠纷化解工作，"
            "完善工作机制，加强基层基础建设，提升群众满意度。" * 2
            for k in range(3)
        ]
        (folder / f"doc_{i:03d}.txt").write_text(
            f"{city}信访工作通报\n\n" + "\n".join(paragraphs), encoding="utf-8"
        )
        tokens[f"doc_{i:03d}"] = token
    return tokens


def _committed_on_server(client: Any, collection: str) -> int:
    """Documents committed so far (records in the manifest collection), read from the server."""
    try:
        return int(client.get_collection(f"{collection}.docs", embedding_function=None).count())
    except Exception:  # not created yet
        return 0


def _committed_in_folder(chroma_dir: Path, collection: str) -> int:
    """Manifest records written so far to an embedded index, read from its SQLite log without
    taking a lock (``immutable``), so the writer is never disturbed; a torn read counts 0.

    The index's journal mode is ``delete``: while a write is in flight its rollback journal
    exists and the database file may already hold pages that a kill would roll back. Such a
    read counts 0, so a count is only ever of committed records."""
    journal = chroma_dir / "chroma.sqlite3-journal"
    if journal.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{chroma_dir / 'chroma.sqlite3'}?mode=ro&immutable=1", uri=True)
        try:
            row = db.execute(
                "SELECT count(*) FROM embeddings_queue q JOIN collections c "
                "ON q.topic LIKE '%' || c.id WHERE c.name = ?",
                (f"{collection}.docs",),
            ).fetchone()
        finally:
            db.close()
        return 0 if journal.exists() else int(row[0])
    except sqlite3.Error:
        return 0


def _ingest(folder: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [BIN / "rag", "ingest", str(folder), "--json"],
            cwd=folder.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def index_report(tokens: dict[str, str]) -> dict[str, Any]:
    """What a reader of the index (settings from the env) sees; run in a process of its own, as
    the embedded index is not to be opened by two processes at once."""
    service = RAGService()
    committed = service.store.committed()
    visible = list(service.store.iter_chunks())
    return {
        "committed": {d: i.chunks for d, i in committed.items()},
        "stored_chunks": service.store.count_chunks(),
        "visible_ids": [c.id for c in visible],
        "visible_keys": [[c.metadata["doc_id"], c.metadata["chunk_index"]] for c in visible],
        "hits": {d: [h.doc_id for h in service.search(t, top_k=5)] for d, t in tokens.items()},
    }


def _report(env: dict[str, str], tokens: dict[str, str], cwd: Path) -> dict[str, Any]:
    code = (
        "import json, sys; from tests.test_scale_out import index_report; "
        "print(json.dumps(index_report(json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(tokens)],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def _assert_consistent(report: dict[str, Any]) -> None:
    """Only committed documents are visible, each whole, no chunk twice."""
    committed: dict[str, int] = report["committed"]
    ids, keys = report["visible_ids"], [tuple(k) for k in report["visible_keys"]]
    assert len(set(ids)) == len(ids)
    assert len(set(keys)) == len(keys)
    for doc_id, chunks in committed.items():
        assert sum(k[0] == doc_id for k in keys) == chunks
    assert len(keys) == sum(committed.values())
    for doc_id, hits in report["hits"].items():
        assert set(hits) <= set(committed), (doc_id, hits)
        if doc_id in committed:
            assert hits[0] == doc_id, (doc_id, hits)


@pytest.mark.parametrize("mode", ["server", "embedded"])
def test_kill_9_during_ingest_leaves_a_consistent_index(
    tmp_path: Path, chroma: ChromaServer, mode: str
) -> None:
    require((BIN / "rag").exists(), "the `rag` console script is not installed")
    corpus = tmp_path / "corpus"
    tokens = _write_corpus(corpus)
    collection = f"kill-{mode}"
    data_dir = tmp_path / "data"
    # small groups (a write every few documents), so that the kill lands between two of them
    env = _env(data_dir, chroma.url, RAG_COLLECTION=collection, RAG_INGEST_GROUP_CHUNKS="8")
    if mode == "server":
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        watcher = chromadb.HttpClient(
            host="127.0.0.1", port=chroma.port, settings=ChromaSettings(anonymized_telemetry=False)
        )

        def committed() -> int:
            return _committed_on_server(watcher, collection)
    else:
        del env["RAG_CHROMA_URL"]

        def committed() -> int:
            return _committed_in_folder(data_dir / "chroma", collection)

    log = tmp_path / "ingest.log"
    proc = _ingest(corpus, env, log)
    try:
        deadline = time.monotonic() + 400
        while (done := committed()) < 3:
            assert proc.poll() is None, f"ingest ended before it was killed:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"no document committed:\n{_tail(log)}"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    assert proc.returncode == -signal.SIGKILL
    assert done < N_DOCS, "ingest finished before the kill; make the corpus larger"

    after_kill = _report(env, tokens, tmp_path)
    # The watcher counts commit records in the engine's log; the last one may not have been
    # applied when the process died, and that document is then simply not committed.
    assert 2 <= len(after_kill["committed"]) < N_DOCS
    _assert_consistent(after_kill)

    # The rerun completes: every document in, nothing twice, no garbage left.
    rerun = _ingest(corpus, env, log)
    try:
        assert rerun.wait(timeout=400) == 0, _tail(log)
    finally:
        _stop(rerun)
    final = _report(env, tokens, tmp_path)
    assert set(final["committed"]) == set(tokens)
    _assert_consistent(final)
    assert final["stored_chunks"] == sum(final["committed"].values())  # no garbage left
    shutil.rmtree(corpus)
