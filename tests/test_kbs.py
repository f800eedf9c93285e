"""Knowledge bases on real components: real Chroma (embedded), the real embedder, BM25, and the
real app over real HTTP with a keys file of three keys. The route × key × KB matrix is generated
from the keys' rights, not written case by case."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import KeyRing, KeysFileError
from api.client import ConflictError, ForbiddenError, NotFoundError, RAGClient
from eval.targets import HttpTarget
from rag.errors import BadInput, Conflict, NotFound
from rag.service import RAGService

from .conftest import serve, service_copy

DOC_A = (
    "青禾市2031年信访工作情况通报\n\n"
    "2031年，青禾市信访总量同比下降了37.5%，全年共受理群众来信来访1234件。"
    "青禾市集体访人次同比下降了41%，越级上访明显减少。\n"
)
DOC_B = (
    "白杨县2031年就业工作报告\n\n"
    "2031年，白杨县城镇新增就业5200人，城镇登记失业率控制在3.1%以内。"
    "白杨县全年开展职业技能培训8600人次。\n"
)
Q_A = "青禾市2031年信访总量同比下降了多少？"
Q_B = "白杨县2031年城镇新增就业多少人？"


@pytest.fixture
def kbs(tmp_path: Path, seeded: RAGService) -> RAGService:
    """A service of its own with two KBs, a (青禾市) and b (白杨县); the default KB is empty."""
    service = service_copy(seeded, tmp_path / "data")
    for name, doc, text in (("a", "qinghe.txt", DOC_A), ("b", "baiyang.txt", DOC_B)):
        service.create_kb(name)
        assert service.ingest_bytes([(doc, text.encode())], kb=name).count("added") == 1
    return service


def _ids(service: RAGService, query: str, mode: str, kbs: list[str] | None) -> list[str]:
    return [h.doc_id for h in service.search(query, top_k=5, mode=mode, kbs=kbs)]  # type: ignore[arg-type]


def test_each_kb_is_its_own_index_and_several_are_asked_as_one(kbs: RAGService) -> None:
    assert [k.name for k in kbs.list_kbs()] == ["documents", "a", "b"]
    assert {k.name: k.documents for k in kbs.list_kbs()} == {"documents": 0, "a": 1, "b": 1}
    for mode in ("hybrid", "dense", "bm25"):
        assert _ids(kbs, "青禾市信访总量", mode, ["b"]) in ([], ["baiyang"])
        assert "qinghe" not in _ids(kbs, "青禾市信访总量", mode, None)  # the default KB
    hits = kbs.search("青禾市信访总量 白杨县新增就业", top_k=5, kbs=["a", "b"])
    assert {(h.kb, h.doc_id) for h in hits} == {("a", "qinghe"), ("b", "baiyang")}

    answer = kbs.answer(Q_A, backend="extractive", kbs=["b", "a"])
    assert not answer.refused and "37.5%" in answer.answer
    assert {(c.kb, c.doc_id) for c in answer.citations} == {("a", "qinghe")}
    assert all(p.kb in ("a", "b") for p in answer.passages)
    assert kbs.answer(Q_A, backend="extractive", kbs=["b"]).refused
    assert {f.kb for f in kbs.facts("a")} == {"a"}


COMPARISON = "哪个城市信访总量下降最多?"


def test_delete_is_immediate_on_the_lexical_and_the_dense_side(kbs: RAGService) -> None:
    for mode in ("bm25", "dense"):  # both sides built and warm before the delete
        assert _ids(kbs, "青禾市信访总量", mode, ["a"])[0] == "qinghe"
    assert not kbs.answer(Q_A, backend="extractive", kbs=["a"]).refused
    ranked = kbs.answer(COMPARISON, backend="extractive", kbs=["a", "b"]).facts or []
    assert [(f.kb, f.doc_id, f.figure) for f in ranked] == [("a", "qinghe", "37.5%")]
    assert kbs.delete_document("qinghe", kb="a")
    for mode in ("bm25", "dense", "hybrid"):
        assert "qinghe" not in _ids(kbs, "青禾市信访总量", mode, ["a", "b"])
    answer = kbs.answer(Q_A, backend="extractive", kbs=["a", "b"])
    assert "qinghe" not in {c.doc_id for c in answer.citations}
    assert "qinghe" not in {p.doc_id for p in answer.passages}
    assert not [f for f in kbs.facts("a")]
    after = kbs.answer(COMPARISON, backend="extractive", kbs=["a", "b"])
    assert not after.facts and "37.5%" not in after.answer, after

    kbs.delete_kb("b")
    with pytest.raises(NotFound, match="no knowledge base 'b'"):
        kbs.search(Q_B, kbs=["b"])
    with pytest.raises(NotFound):
        kbs.answer(Q_B, backend="extractive", kbs=["a", "b"])
    kbs.create_kb("b")  # a new KB of the old name holds nothing of the old one
    assert kbs.search(Q_B, kbs=["b"]) == [] and kbs.documents("b") == []


def test_another_process_view_sees_kbs_created_and_deleted(kbs: RAGService) -> None:
    """A second service on the same index (as a replica would be) sees a KB deleted and made
    again at once, never an answer from what it held."""
    other = RAGService(kbs.settings, embedder=kbs.embedder)
    assert _ids(other, Q_B, "bm25", ["b"]) == ["baiyang"]
    kbs.delete_kb("b")
    with pytest.raises(NotFound):
        other.search(Q_B, kbs=["b"])
    kbs.create_kb("b")
    assert other.search(Q_B, kbs=["b"]) == []


def test_kb_names_conflicts_and_the_default(kbs: RAGService) -> None:
    for bad in ("", "-a", "a.b", "a/b", "x" * 65, "名字"):
        with pytest.raises(BadInput):
            kbs.create_kb(bad)
    with pytest.raises(Conflict):
        kbs.create_kb("a")
    assert kbs.create_kb("a", exist_ok=True).documents == 1  # the one there, as it was
    with pytest.raises(Conflict):
        kbs.create_kb("documents")
    with pytest.raises(Conflict, match="cannot be deleted"):
        kbs.delete_kb("documents")
    with pytest.raises(NotFound):
        kbs.delete_kb("nope")
    with pytest.raises(BadInput):
        kbs.search("x", kbs=[])
    # A filter that matches nothing finds nothing (it does not fall back to everything).
    for mode in ("hybrid", "dense", "bm25"):
        assert kbs.search(Q_A, mode=mode, filters={"doc_id": ["nope"]}, kbs=["a", "b"]) == []
    nothing = kbs.answer(Q_A, backend="extractive", filters={"region": "nowhere"}, kbs=["a"])
    assert nothing.refused and not nothing.citations


def test_open_kbs_are_bounded_by_the_setting(tmp_path: Path, seeded: RAGService) -> None:
    settings = seeded.settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "kb": seeded.settings.kb.model_copy(update={"max_open": 2}),
        }
    )
    service = RAGService(settings, embedder=seeded.embedder)
    for i in range(5):
        service.create_kb(f"k{i}")
        service.ingest_bytes(
            [(f"d{i}.txt", DOC_B.replace("白杨县", f"县{i}").encode())], kb=f"k{i}"
        )
        service.search("新增就业", kbs=[f"k{i}"])
    service.documents()  # the default KB, held open besides the two
    assert service.kbs.open_names() == ["k3", "k4", "documents"]
    assert _ids(service, "新增就业", "bm25", ["k0"]) == ["d0"]  # released, opened again
    assert service.kbs.open_names() == ["k4", "documents", "k0"]
    assert len(service.list_kbs()) == 6  # listing opens none for good
    assert service.kbs.open_names() == ["k4", "documents", "k0"]


# -- keys ------------------------------------------------------------------------------------------

KEYS = {"ops": "k-ops-1", "writer-a": "k-writer-a", "reader-b": "k-reader-b"}
KEYS_TOML = f"""
[keys.ops]
key = "{KEYS["ops"]}"
admin = true

[keys.writer-a]
key_sha256 = "{hashlib.sha256(KEYS["writer-a"].encode()).hexdigest()}"
read = ["a"]
write = ["a"]

[keys.reader-b]
key = "{KEYS["reader-b"]}"
read = ["b"]
"""


def test_keys_file_errors_are_clear(tmp_path: Path, seeded: RAGService) -> None:
    cases = {
        "[keys.x]\nadmin = true\n": "exactly one of key and key_sha256",
        '[keys.x]\nkey = "a"\nkey_sha256 = "' + "0" * 64 + '"\n': "exactly one",
        '[keys.x]\nkey = "a"\nread = ["no/slash"]\n': "not a knowledge base name",
        '[keys.x]\nkey = "a"\nwrtie = ["a"]\n': "wrtie",
        '[keys.x]\nkey_sha256 = "abc"\n': "key_sha256",
        "[keys.x\n": "not valid TOML",
    }
    for text, message in cases.items():
        path = tmp_path / "keys.toml"
        path.write_text(text)
        settings = seeded.settings.model_copy(update={"api_keys_file": path})
        with pytest.raises(KeysFileError, match=message):
            KeyRing.from_settings(settings)
    missing = seeded.settings.model_copy(update={"api_keys_file": tmp_path / "none.toml"})
    with pytest.raises(KeysFileError, match="cannot be read"):
        KeyRing.from_settings(missing)


@dataclass(frozen=True)
class Api:
    url: str
    service: RAGService

    def call(self, key: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, seeded: RAGService) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("kb-api")
    (folder / "keys.toml").write_text(KEYS_TOML)
    service = service_copy(
        seeded,
        folder / "data",
        api_keys_file=folder / "keys.toml",
        llm=seeded.settings.llm.model_copy(update={"backend": "extractive"}),
    )
    for name, doc, text in (("a", "qinghe.txt", DOC_A), ("b", "baiyang.txt", DOC_B)):
        service.create_kb(name)
        service.ingest_bytes([(doc, text.encode())], kb=name)
    service.ingest_bytes([("default.txt", DOC_B.replace("白杨县", "默认县").encode())])
    with serve(create_app(service.settings, service)) as base:
        yield Api(base, service)


def _rights(key: str, kb: str) -> tuple[bool, bool]:
    """(read, write) of a key on a KB, from the keys file above."""
    if key == "ops":
        return True, True
    return (key == "writer-a" and kb == "a") or (key == "reader-b" and kb == "b"), (
        key == "writer-a" and kb == "a"
    )


def _docs(kb: str) -> str:
    return "/v1/documents" if kb == "documents" else f"/v1/kbs/{kb}/documents"


def _kbs_body(kb: str) -> list[str] | None:
    return None if kb == "documents" else [kb]


def _chat(stream: bool) -> Callable[[str], dict[str, Any]]:
    def body(kb: str) -> dict[str, Any]:
        out: dict[str, Any] = {"question": Q_B, "stream": stream}
        if (kbs := _kbs_body(kb)) is not None:
            out["kbs"] = kbs
        return out

    return body


def _completions(stream: bool) -> Callable[[str], dict[str, Any]]:
    def body(kb: str) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": [{"role": "user", "content": Q_B}], "stream": stream}
        if (kbs := _kbs_body(kb)) is not None:
            out["kbs"] = kbs
        return out

    return body


def _search(kb: str) -> dict[str, Any]:
    out: dict[str, Any] = {"query": Q_B}
    if (kbs := _kbs_body(kb)) is not None:
        out["kbs"] = kbs
    return out


# Routes that read a KB: (name, method, path of the KB, JSON body of the KB).
READS: list[tuple[str, str, Callable[[str], str], Callable[[str], Any] | None]] = [
    ("list documents", "GET", _docs, None),
    ("get document", "GET", lambda kb: f"{_docs(kb)}/no-such-doc", None),
    ("search", "POST", lambda kb: "/v1/search", _search),
    ("chat", "POST", lambda kb: "/v1/chat", _chat(False)),
    ("chat stream", "POST", lambda kb: "/v1/chat", _chat(True)),
    ("completions", "POST", lambda kb: "/v1/chat/completions", _completions(False)),
    ("completions stream", "POST", lambda kb: "/v1/chat/completions", _completions(True)),
]


def _not_found(kb: str) -> dict[str, Any]:
    return {"error": {"type": "not_found", "message": f"no knowledge base '{kb}'"}}


def test_every_route_key_and_kb_does_what_the_keys_file_says(api: Api) -> None:
    for key, kb, (name, method, path, body) in itertools.product(
        KEYS, ("a", "b", "documents", "nope"), READS
    ):
        read = _rights(key, kb)[0] and kb != "nope"
        r = api.call(KEYS[key], method, path(kb), json=body(kb) if body else None)
        case = f"{key} {name} {kb}: {r.status_code} {r.text[:300]}"
        if not read:  # not readable or not there: one and the same 404
            assert r.status_code == 404 and r.json() == _not_found(kb), case
        elif name == "get document":
            assert r.status_code == 404 and "no document" in r.json()["error"]["message"], case
        else:
            assert r.status_code == 200, case
            if "stream" in name:
                assert r.headers["content-type"].startswith("text/event-stream"), case
                assert "event: error" not in r.text and '"error":' not in r.text, case


def test_uploads_and_deletes_need_the_write_right(api: Api) -> None:
    for key, kb in itertools.product(KEYS, ("a", "b", "documents", "nope")):
        read, write = _rights(key, kb)
        doc = f"tmp-{key}-{kb}"
        files = {"file": (f"{doc}.txt", DOC_A.replace("青禾市", f"{key}市").encode())}
        up = api.call(KEYS[key], "POST", _docs(kb), files=files)
        case = f"{key} upload {kb}: {up.status_code} {up.text[:300]}"
        if kb == "nope" or not read:
            assert up.status_code == 404 and up.json() == _not_found(kb), case
            continue
        if not write:
            assert up.status_code == 403 and up.json()["error"]["type"] == "forbidden", case
            assert doc not in [d.doc_id for d in api.service.documents(kb)]
            api.service.ingest_bytes([(f"{doc}.txt", DOC_A.encode())], kb=kb)  # for the delete
        else:
            assert up.status_code == 200 and up.json()["documents"][0]["status"] == "added", case
        gone = api.call(KEYS[key], "DELETE", f"{_docs(kb)}/{doc}")
        if write:
            assert gone.status_code == 200, gone.text
            assert doc not in [d.doc_id for d in api.service.documents(kb)]
        else:
            assert gone.status_code == 403, gone.text
            assert doc in [d.doc_id for d in api.service.documents(kb)]  # nothing lost
            api.service.delete_document(doc, kb)


def test_kb_admin_routes_and_listing(api: Api) -> None:
    listed = {
        key: [k["name"] for k in api.call(KEYS[key], "GET", "/v1/kbs").json()["kbs"]]
        for key in KEYS
    }
    assert listed == {"ops": ["documents", "a", "b"], "writer-a": ["a"], "reader-b": ["b"]}
    for key in KEYS:
        made = api.call(KEYS[key], "POST", "/v1/kbs", json={"name": f"new-{key}"})
        if key == "ops":
            assert made.status_code == 201, made.text
            assert made.json() == {"name": "new-ops", "documents": 0, "chunks": 0}
            assert (
                api.call(KEYS[key], "POST", "/v1/kbs", json={"name": "new-ops"}).status_code == 409
            )
            assert api.call(KEYS[key], "DELETE", "/v1/kbs/new-ops").status_code == 200
            assert api.call(KEYS[key], "DELETE", "/v1/kbs/new-ops").status_code == 404
            assert api.call(KEYS[key], "DELETE", "/v1/kbs/documents").status_code == 409
        else:
            dropped = api.call(KEYS[key], "DELETE", "/v1/kbs/a")
            assert made.status_code == 403 and dropped.status_code == 403, (made.text, dropped.text)
            assert "a" in api.service.kbs.names()
    bad = api.call(KEYS["ops"], "POST", "/v1/kbs", json={"name": "a/b"})
    assert bad.status_code == 422 and "not valid" in bad.json()["error"]["message"]
    for body in ({"query": "x", "kbs": []}, {"query": "x", "kbs": "a"}):
        assert api.call(KEYS["ops"], "POST", "/v1/search", json=body).status_code == 422
    for anonymous in (None, "wrong-key"):
        r = api.call(anonymous, "GET", "/v1/kbs")
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"


def test_an_upload_to_a_is_never_visible_from_b(api: Api) -> None:
    with (
        RAGClient(api.url, api_key=KEYS["writer-a"]) as writer,
        RAGClient(api.url, api_key=KEYS["reader-b"]) as reader,
        RAGClient(api.url, api_key=KEYS["ops"]) as ops,
    ):
        assert writer.upload(_write(api, "lanxi.txt"), kb="a")[0].status == "added"
        assert "lanxi" in [d.doc_id for d in writer.documents(kb="a")]
        assert "lanxi" not in [h.doc_id for h in reader.search("兰溪镇 垃圾分类", kbs=["b"])]
        answer = reader.chat("兰溪镇垃圾分类覆盖率是多少？", kbs=["b"])
        assert "lanxi" not in {c.doc_id for c in answer.citations}
        with pytest.raises(NotFoundError):
            reader.documents(kb="a")
        with pytest.raises(ForbiddenError):
            reader.upload(_write(api, "lanxi.txt"), kb="b")
        with pytest.raises(ConflictError):
            ops.create_kb("a")
        both = ops.chat("兰溪镇垃圾分类覆盖率是多少？", kbs=["a", "b"])
        assert not both.refused and {c.kb for c in both.citations} == {"a"}
        assert [k.name for k in reader.kbs()] == ["b"]
        for route in ("chat", "completions"):  # the harness's targets: `rag eval --url … --kb a`
            target = HttpTarget(api.url, KEYS["writer-a"], route, kb="a")
            assert target.search("兰溪镇 垃圾分类", 5, "hybrid")[0].kb == "a"
            cited = target.answer("兰溪镇垃圾分类覆盖率是多少？", "extractive")
            assert "96.5%" in cited.answer and cited.citations[0].kb == "a", (route, cited)
            denied = HttpTarget(api.url, KEYS["reader-b"], route, kb="a")
            with pytest.raises(Exception, match="no knowledge base 'a'"):
                denied.answer("兰溪镇垃圾分类覆盖率是多少？", "extractive")
        writer.delete("lanxi", kb="a")
        assert "lanxi" not in [h.doc_id for h in ops.search("兰溪镇 垃圾分类", kbs=["a", "b"])]


def _write(api: Api, name: str) -> Path:
    path = Path(api.service.settings.data_dir) / name
    path.write_text(
        "兰溪镇2031年垃圾分类工作总结\n\n2031年，兰溪镇生活垃圾分类覆盖率达到96.5%，"
        "新建分类投放点120个。\n",
        encoding="utf-8",
    )
    return path


def test_metrics_carry_the_key_name_never_the_key(api: Api) -> None:
    api.call(KEYS["reader-b"], "POST", "/v1/search", json=_search("b")).raise_for_status()
    text = api.call(KEYS["ops"], "GET", "/metrics").text
    assert 'key="reader-b"' in text
    assert re.search(r"^rag_kbs_open \d", text, re.M) and "rag_kb_opens_total" in text
    assert re.search(r'^rag_lexical_pieces\{kb="b"\} [1-9]', text, re.M)
    assert re.search(r'^rag_lexical_chunks_read_total\{kb="b"\} [1-9]', text, re.M)
    assert not any(k in text for k in KEYS.values())
    assert json.dumps(KEYS["writer-a"]) not in text
