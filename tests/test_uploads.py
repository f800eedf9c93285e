"""Hostile uploads through raw httpx against a live app (real uvicorn, real index): traversal
names, a DOCX zip bomb, oversized, wrong MIME / extension mismatch, undecodable and empty files,
files past the per-file limits (pages, nesting, characters, unpacked bytes), truncated and
encrypted PDFs, GB18030/Big5 text, over-long names, and one file uploaded twenty times at once.

The contract of ``POST /v1/documents`` (api/routes/documents.py): a request-level problem (a
name that is no file name, an unsupported extension, too many bytes) is a 4xx JSON error; a file
whose content cannot become a document is a per-file ``failed`` result in a 200, the other files
of the request going in. A traversal name is reduced to its base name. The client's MIME header is
never trusted: the extension picks the loader and the bytes must fit it. Nothing is ever written
outside the data dir.
"""

from __future__ import annotations

import io
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from rag.loaders import DEFAULT_LIMITS
from rag.service import RAGService

from .conftest import ROOT, blank_pdf, poll_job, serve, service_copy

pytestmark = pytest.mark.slow

KEY = "upload-key"
LIMIT = 2_000_000
H = {"Authorization": f"Bearer {KEY}"}
TEXT = "测试上传文档\n发布时间:2024-05-01\n某县2024年新建公园12个,新增绿地面积36公顷。\n".encode()


@pytest.fixture(scope="module")
def live(
    seeded: RAGService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """(base URL, the root holding the data dir): the data dir sits two levels below the root,
    so a ``../../`` that escaped would land inside the root, where the test looks."""
    root = tmp_path_factory.mktemp("uploads-root")
    data = root / "a" / "b" / "data"
    data.mkdir(parents=True)
    limits = service_limits(seeded)
    service = service_copy(seeded, data, api_keys=KEY, max_upload_bytes=LIMIT, limits=limits)
    with serve(create_app(service.settings, service)) as base:
        yield base, root


MAX_CHARS = 100_000  # the live app's RAG_LIMITS__MAX_CHARS: a file past it fails fast


def service_limits(seeded: RAGService) -> Any:
    return seeded.settings.limits.model_copy(update={"max_chars": MAX_CHARS})


def _outside(root: Path) -> set[str]:
    """Every path under ``root`` but not in the data dir, and the repo's and /tmp's top level."""
    data = root / "a" / "b" / "data"
    under = {str(p) for p in root.rglob("*") if data not in p.parents and p != data}
    tops = {str(p) for d in (ROOT, Path("/tmp"), Path.cwd()) for p in d.iterdir()}
    return under | tops


def _post(base: str, name: str, data: bytes, mime: str = "text/plain") -> httpx.Response:
    return httpx.post(
        f"{base}/v1/documents", headers=H, files={"file": (name, data, mime)}, timeout=120
    )


def _only_result(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    (doc,) = r.json()["documents"]
    return doc  # type: ignore[no-any-return]


def _followed(base: str, r: httpx.Response) -> dict[str, Any]:
    """The one file's result, of a small upload (200) or of the job a large one became (202)."""
    if r.status_code != 202:
        return _only_result(r)
    job = poll_job(base, H, r.json()["job"])[-1]
    assert job["status"] == "done", job
    (doc,) = job["documents"]
    return doc  # type: ignore[no-any-return]


def _assert_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()["error"]
    assert set(body) == {"type", "message"} and body["message"]


def _docx(document_xml: bytes | None = None, bomb_bytes: int = 0) -> bytes:
    """A minimal real DOCX (python-docx), or one whose word/document.xml unpacks to
    ``bomb_bytes`` (written in streamed chunks: a few hundred KB on the wire)."""
    import docx

    buf = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("某县2024年新建公园12个。")
    d.save(buf)
    if not bomb_bytes:
        return buf.getvalue()
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                zf.writestr(item, src.read(item.filename))
        with zf.open("word/document.xml", "w", force_zip64=True) as f:
            head = src.read("word/document.xml")
            cut = head.index(b"<w:body>") + len(b"<w:body>")
            f.write(head[:cut])
            chunk = b"<w:p/>" * (1 << 17)
            written = 0
            while written < bomb_bytes:
                f.write(chunk)
                written += len(chunk)
            f.write(head[cut:])
    return out.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "../../{c}.txt",
        "..\\..\\{c}.txt",
        "/tmp/{c}.txt",
        "C:\\Windows\\Temp\\{c}.txt",
        "....//....//{c}.txt",
        "a/../../../{c}.txt",
    ],
)
def test_traversal_names_are_reduced_to_their_base_name(live: tuple[str, Path], name: str) -> None:
    base, root = live
    canary = f"pwn-{uuid.uuid4().hex[:12]}"
    before = _outside(root)
    doc = _only_result(_post(base, name.format(c=canary), TEXT.replace(b"12", b"13")))
    assert doc["source"] == f"{canary}.txt" and doc["status"] in ("added", "unchanged"), doc
    assert _outside(root) == before
    for where in (root, ROOT, Path("/tmp"), Path("/")):
        assert not list(where.glob(f"**/{canary}*" if where == root else f"{canary}*"))
    listed = httpx.get(f"{base}/v1/documents", headers=H, params={"limit": 1000}).json()
    assert any(d["source"] == f"{canary}.txt" for d in listed["documents"])


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("..", 422),
        (".", 422),
        ("../", 422),
        ("..\\", 422),
        ("/", 422),
        (".hidden.txt", 422),
        ("dir/", 415),  # the base name has no supported extension
        ("../../etc/", 415),
    ],
)
def test_names_that_are_no_file_names_are_a_4xx(
    live: tuple[str, Path], name: str, status: int
) -> None:
    _assert_error(_post(live[0], name, TEXT), status)


def test_docx_zip_bomb_fails_fast_without_unpacking(live: tuple[str, Path]) -> None:
    base, root = live
    bomb = _docx(bomb_bytes=300 * 1024 * 1024)
    assert len(bomb) < LIMIT  # passes the upload limit: the loader must catch it
    before = _outside(root)
    t0 = time.monotonic()
    doc = _only_result(_post(base, "bomb.docx", bomb, "application/octet-stream"))
    took = time.monotonic() - t0
    print(f"\nzip bomb: {len(bomb)} bytes on the wire, 300 MiB unpacked; refused in {took:.2f} s")
    assert doc["status"] == "failed" and "unpack" in doc["message"], doc
    assert f"{DEFAULT_LIMITS.max_unpacked_bytes:,}" in doc["message"]
    assert took < 10
    assert _outside(root) == before
    assert httpx.get(f"{base}/readyz").status_code == 200
    # A real DOCX still goes in.
    ok = _only_result(_post(base, "fine.docx", _docx()))
    assert ok["status"] in ("added", "unchanged") and ok["chunks"] >= 1


def test_oversized_upload_is_a_413(live: tuple[str, Path]) -> None:
    base, root = live
    before = _outside(root)
    _assert_error(_post(base, "big.txt", b"x" * (LIMIT + 1)), 413)
    _assert_error(_post(base, "big.docx", b"PK" + b"\x00" * (LIMIT + 10)), 413)
    assert _outside(root) == before


@pytest.mark.parametrize(
    ("name", "data", "mime", "reason"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "image/png", "binary"),
        ("report.pdf", TEXT, "application/pdf", "PDF"),
        ("report.docx", TEXT, "application/vnd.openxmlformats", "DOCX"),
        ("notdocx.docx", None, "application/zip", "DOCX"),
        ("page.html", b"<html><script>alert(1)</script></html>", "text/html", "no text"),
    ],
)
def test_content_that_does_not_fit_its_extension_fails_alone(
    live: tuple[str, Path], name: str, data: bytes | None, mime: str, reason: str
) -> None:
    if data is None:  # a valid zip, but no Office package inside
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("hello.txt", "你好")
        data = buf.getvalue()
    base, root = live
    before = _outside(root)
    r = httpx.post(
        f"{base}/v1/documents",
        headers=H,
        files=[("file", (name, data, mime)), ("file", ("good-neighbour.txt", TEXT, "text/plain"))],
    )
    assert r.status_code == 200, r.text
    bad, good = r.json()["documents"]
    assert bad["status"] == "failed" and reason.lower() in bad["message"].lower(), bad
    assert good["status"] in ("added", "unchanged")
    assert _outside(root) == before


def test_wrong_mime_header_is_not_trusted(live: tuple[str, Path]) -> None:
    base = live[0]
    # An executable by name is refused whatever MIME the client claims …
    _assert_error(_post(base, "tool.exe", TEXT, "text/plain"), 415)
    _assert_error(_post(base, "noext", TEXT, "text/plain"), 415)
    # … and real text named .txt goes in even when the client calls it a PNG.
    doc = _only_result(_post(base, "mislabelled.txt", TEXT.replace(b"12", b"14"), "image/png"))
    assert doc["status"] in ("added", "unchanged")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([0xFF]) * 4000, "undecodable"),
        (bytes(range(128, 256)) * 40, "undecodable"),
        (b"", "empty"),
        (b"   \n\t\n  ", "empty"),
        (b"\x00" * 100, "empty"),
    ],
)
def test_undecodable_and_empty_files_fail_alone(
    live: tuple[str, Path], data: bytes, reason: str
) -> None:
    base, root = live
    before = _outside(root)
    doc = _only_result(_post(base, "weird.txt", data))
    assert doc["status"] == "failed" and doc["message"], doc
    if reason == "empty" and data.strip(b"\x00"):
        assert "empty" in doc["message"]
    assert _outside(root) == before
    assert os.path.isdir(root / "a" / "b" / "data")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# RSS this test process (the server runs in it) may grow by over the whole hostile suite.
RSS_BOUND_MIB = 600

HOSTILE: list[tuple[str, bytes, str]] = [
    ("blank-2000-pages.pdf", blank_pdf(2000), "RAG_LIMITS__MAX_PDF_PAGES"),
    ("truncated.pdf", blank_pdf(5)[:400], "unreadable PDF"),
    ("encrypted.pdf", blank_pdf(1, "secret"), "encrypted PDF"),
    ("nested.html", b"<div>" * 100_000 + "深".encode() + b"</div>" * 100_000, "MAX_HTML_DEPTH"),
    ("binary.txt", bytes(range(256)) * 64, "binary"),
    ("not-a-zip.docx", b"PK\x03\x04 this is no zip at all" * 10, "DOCX"),
    ("bomb.docx", _docx(bomb_bytes=200 * 1024 * 1024), "RAG_LIMITS__MAX_UNPACKED_BYTES"),
    ("one-long-line.txt", "长".encode() * (MAX_CHARS + 1), "RAG_LIMITS__MAX_CHARS"),
    ("gb18030.txt", "甲县2025年新建公园7个。".encode("gb18030") * 20, ""),
    ("big5.txt", "乙縣2025年新建公園9個。".encode("big5") * 20, ""),
    ("x" * 250 + ".txt", "丙县2025年新建公园3个。".encode() * 5, ""),
]


def test_hostile_files_each_get_a_defined_status_and_lose_nothing(live: tuple[str, Path]) -> None:
    """Every hostile file gets its own defined result (the limit or the defect named, or in
    when it is merely odd), the server stays up, its memory within RSS_BOUND_MIB, and the index
    keeps answering what it answered before."""
    base = live[0]
    known = _only_result(_post(base, "known.txt", "戊县2026年新建公园41个。".encode()))
    assert known["status"] in ("added", "unchanged")
    question = {"question": "戊县2026年新建公园多少个?", "backend": "extractive"}
    before_answer = httpx.post(f"{base}/v1/chat", headers=H, json=question, timeout=60).json()
    assert "41个" in before_answer["answer"], before_answer
    rss0 = _rss_mib()
    seen = []
    for name, data, message in HOSTILE:
        doc = _followed(base, _post(base, name, data, "application/octet-stream"))
        seen.append((name[:30], doc["status"], (doc["message"] or "")[:90]))
        if message:
            assert doc["status"] == "failed" and message in doc["message"], doc
        else:
            assert doc["status"] in ("added", "unchanged") and doc["chunks"] >= 1, doc
        assert httpx.get(f"{base}/readyz").status_code == 200
    grown = _rss_mib() - rss0
    print(f"\nhostile files: RSS grew {grown:.0f} MiB (bound {RSS_BOUND_MIB})")
    for row in seen:
        print("  ", *row)
    assert grown < RSS_BOUND_MIB
    after = httpx.post(f"{base}/v1/chat", headers=H, json=question, timeout=60).json()
    assert "41个" in after["answer"] and after["citations"], after


def test_the_same_file_uploaded_twenty_times_at_once_is_one_document(
    live: tuple[str, Path],
) -> None:
    import concurrent.futures

    base = live[0]
    data = "丁县2025年新建公园21个,新增绿地面积58公顷。\n".encode() * 3
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: _post(base, "same.txt", data), range(20)))
    statuses = [_only_result(r)["status"] for r in replies]
    assert set(statuses) <= {"added", "unchanged"}, statuses
    docs = httpx.get(f"{base}/v1/documents", headers=H, params={"limit": 1000}).json()
    same = [d for d in docs["documents"] if d["doc_id"] == "same"]
    assert len(same) == 1, same
    body = {"query": "丁县新建公园", "top_k": 50, "filters": {"doc_id": "same"}}
    hits = httpx.post(f"{base}/v1/search", headers=H, json=body).json()["hits"]
    assert len(hits) == same[0]["chunks"]  # each chunk once: no copy left by the racers
