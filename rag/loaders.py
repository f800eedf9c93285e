"""Files → text: .txt .md .html .pdf .docx, with encoding detection (utf-8, gb18030, big5).

Each failure is a ``LoadError`` with a one-line reason; the caller names the file. What one file
may cost is bounded (``IngestLimits``, ``RAG_LIMITS__*``): each limit is checked before the work
it bounds (the pages of a PDF before any is read, the nesting of HTML before it is parsed, what a
DOCX unpacks to before it is unpacked, the characters of a text before it is chunked) and named
in the error.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from rag.config import IngestLimits
from rag.errors import LoadError as LoadError  # re-exported: the ingest pipeline catches it

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
_CJK_ENCODINGS = ["gb18030", "big5"]
DEFAULT_LIMITS = IngestLimits()
# An element that opens without closing (HTML's void elements), or a comment, doctype, or
# processing instruction: none of them nests.
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")


def _too_many(what: str, count: int, limit: int, setting: str) -> LoadError:
    return LoadError(f"{what}: {count:,}, more than the limit of {limit:,} (RAG_LIMITS__{setting})")


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


def html_depth(data: bytes, stop: int) -> int:
    """How deep the elements of an HTML text nest (a scan of its tags, without parsing it;
    counting stops past ``stop``)."""
    depth = deepest = 0
    for m in _TAG.finditer(data):
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            depth = max(0, depth - 1)
        elif not self_closing and name.decode() not in _VOID:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    break
    return deepest


def _html(data: bytes, limits: IngestLimits) -> Loaded:
    from bs4 import BeautifulSoup

    if html_depth(data, limits.max_html_depth) > limits.max_html_depth:  # counted no further
        raise LoadError(
            f"HTML nesting: more than the limit of {limits.max_html_depth:,} levels "
            "(RAG_LIMITS__MAX_HTML_DEPTH)"
        )
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


def _pdf(data: bytes, limits: IngestLimits) -> Loaded:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("encrypted PDF: cannot be read without its password")
        count = len(reader.pages)
        if count > limits.max_pdf_pages:
            raise _too_many("PDF pages", count, limits.max_pdf_pages, "MAX_PDF_PAGES")
        pages: list[str] = []
        chars = 0
        for page in reader.pages:  # stopped once the text is past its limit
            pages.append(page.extract_text() or "")
            chars += len(pages[-1])
            if chars > limits.max_chars:
                raise _too_many("characters of text", chars, limits.max_chars, "MAX_CHARS")
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from exc
    title = reader.metadata.title if reader.metadata else None
    return Loaded("\n".join(pages), title or None)


def _docx(data: bytes, limits: IngestLimits) -> Loaded:
    import zipfile

    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(f"unreadable DOCX ({exc})") from exc
    # A zip bomb is refused before a byte of it is unpacked: zipfile stops each member at its
    # declared size (and fails its CRC past it), so the declared sizes bound what python-docx
    # can make us decompress.
    unpacked = sum(m.file_size for m in members)
    if len(members) > limits.max_parts:
        raise _too_many("DOCX parts", len(members), limits.max_parts, "MAX_PARTS")
    if unpacked > limits.max_unpacked_bytes:
        raise _too_many(
            "bytes the DOCX unpacks to", unpacked, limits.max_unpacked_bytes, "MAX_UNPACKED_BYTES"
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


def load_bytes(data: bytes, suffix: str, limits: IngestLimits = DEFAULT_LIMITS) -> Loaded:
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(
            f"unsupported file type '{suffix or '(none)'}' "
            f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    if not data.strip():
        raise LoadError("empty file")
    if suffix in HTML_SUFFIXES:
        loaded = _html(data, limits)
    elif suffix == ".pdf":
        loaded = _pdf(data, limits)
    elif suffix == ".docx":
        loaded = _docx(data, limits)
    else:
        # Every encoding here takes 1 to 4 bytes a character: past 4 bytes each, the text is
        # past its limit before a byte is decoded.
        if len(data) > 4 * limits.max_chars:
            raise _too_many("bytes of text", len(data), 4 * limits.max_chars, "MAX_CHARS (x4)")
        loaded = Loaded(decode(data))
    if len(loaded.text) > limits.max_chars:
        raise _too_many("characters of text", len(loaded.text), limits.max_chars, "MAX_CHARS")
    if not loaded.text.strip():
        raise LoadError("no text in file")
    return loaded
