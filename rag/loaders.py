"""Files → text: .txt .md .html .pdf .docx, with encoding detection (utf-8, gb18030, big5).

Each failure is a ``LoadError`` with a one-line reason; the caller names the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from rag.errors import LoadError as LoadError  # re-exported: the ingest pipeline catches it

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
_CJK_ENCODINGS = ["gb18030", "big5"]
# A DOCX is a zip: refuse one that would unpack past this (a zip bomb), before reading a byte of it.
# zipfile stops each member at its declared size (and fails its CRC past it), so the declared
# sizes bound what python-docx can make us decompress.
MAX_DOCX_UNPACKED_BYTES = 100 * 1024 * 1024
MAX_DOCX_MEMBERS = 5_000


@dataclass(frozen=True)
class Loaded:
    text: str
    title: str | None = None  # when the format carries one (HTML <title>)


def decode(data: bytes) -> str:
    """Decode text bytes: utf-8 first (strict), then gb18030 or big5, whichever fits."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=_CJK_ENCODINGS).best()
    if best is not None:
        return str(best)
    for enc in _CJK_ENCODINGS:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise LoadError("undecodable bytes: not utf-8, gb18030 or big5 text")


def _html(data: bytes) -> Loaded:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode(data), "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript", "form"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    h1 = soup.find("h1")
    text = soup.get_text("\n")
    lines = [line.strip() for line in text.splitlines()]
    return Loaded(
        "\n".join(line for line in lines if line),
        title or (h1.get_text(strip=True) if h1 else None),
    )


def _pdf(data: bytes) -> Loaded:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from exc
    title = reader.metadata.title if reader.metadata else None
    return Loaded("\n".join(pages), title or None)


def _docx(data: bytes) -> Loaded:
    import zipfile

    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(f"unreadable DOCX ({exc})") from exc
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_DOCX_MEMBERS or unpacked > MAX_DOCX_UNPACKED_BYTES:
        raise LoadError(
            f"DOCX would unpack to {unpacked} bytes in {len(members)} parts "
            f"(limits: {MAX_DOCX_UNPACKED_BYTES} bytes, {MAX_DOCX_MEMBERS} parts): refused"
        )
    try:
        d = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"unreadable DOCX ({exc})") from exc
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            parts.append(" ".join(cell.text for cell in row.cells))
    return Loaded("\n".join(parts), d.core_properties.title or None)


def load_bytes(data: bytes, suffix: str) -> Loaded:
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(
            f"unsupported file type '{suffix or '(none)'}' "
            f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    if not data.strip():
        raise LoadError("empty file")
    if suffix in HTML_SUFFIXES:
        loaded = _html(data)
    elif suffix == ".pdf":
        loaded = _pdf(data)
    elif suffix == ".docx":
        loaded = _docx(data)
    else:
        loaded = Loaded(decode(data))
    if not loaded.text.strip():
        raise LoadError("no text in file")
    return loaded
