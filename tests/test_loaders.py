from __future__ import annotations

import io
import re

import pytest

from rag.loaders import LoadError, decode, load_bytes

from .conftest import blank_pdf

SAMPLE = "延吉市2016年集體訪人次同比下降52%。"


def _pdf(text: str) -> bytes:
    """A minimal one-page PDF (Helvetica, ASCII text) with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "big5"])
def test_text_encodings_are_detected(encoding: str) -> None:
    text = (
        SAMPLE
        if encoding != "gb18030"
        else "兰州城关区2014年信访总量同比下降15.1%。进京非访量下降73%。"
    )
    assert decode(text.encode(encoding)) == text


def test_undecodable_bytes_are_a_clear_error() -> None:
    with pytest.raises(LoadError, match="undecodable"):
        load_bytes(b"\xff\xfe\xfa\xfb" * 40 + b"\x81", ".txt")


def test_binary_file_is_refused() -> None:
    with pytest.raises(LoadError, match="binary"):
        load_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 10, ".txt")


def test_empty_file_is_refused() -> None:
    with pytest.raises(LoadError, match="empty"):
        load_bytes(b"  \n\n", ".txt")


def test_unknown_extension_is_refused() -> None:
    with pytest.raises(LoadError, match=r"unsupported file type '\.xls'"):
        load_bytes(b"data", ".xls")


def test_html_drops_scripts_and_navigation_and_keeps_title() -> None:
    html = (
        "<html><head><title>城阳区报告</title><script>alert(1)</script></head><body>"
        "<nav>首页 | 新闻</nav><h1>城阳</h1><p>来访同比下降50%。</p><footer>版权所有</footer>"
        "</body></html>"
    ).encode()
    loaded = load_bytes(html, ".html")
    assert loaded.title == "城阳区报告"
    assert "来访同比下降50%。" in loaded.text
    assert "alert" not in loaded.text and "首页" not in loaded.text and "版权" not in loaded.text


def test_markdown_is_text() -> None:
    assert load_bytes("# 标题\n\n正文。".encode(), ".md").text == "# 标题\n\n正文。"


def test_docx_paragraphs_and_tables() -> None:
    import docx

    d = docx.Document()
    d.add_paragraph("龙港市撤销73个行政村。")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "社区"
    table.rows[0].cells[1].text = "102个"
    buf = io.BytesIO()
    d.save(buf)
    text = load_bytes(buf.getvalue(), ".docx").text
    assert "龙港市撤销73个行政村。" in text and "社区 102个" in text


def test_pdf_text_is_extracted() -> None:
    assert "GDP grew 10.5 percent" in load_bytes(_pdf("GDP grew 10.5 percent"), ".pdf").text


def test_broken_pdf_and_docx_are_clear_errors() -> None:
    with pytest.raises(LoadError, match="PDF"):
        load_bytes(b"%PDF-1.4 this is not a pdf", ".pdf")
    with pytest.raises(LoadError, match="DOCX"):
        load_bytes(b"PK not a zip", ".docx")


def test_limits_are_checked_before_the_work_and_named() -> None:
    from rag.config import IngestLimits
    from rag.loaders import html_depth

    small = IngestLimits(max_chars=1000, max_pdf_pages=10, max_html_depth=50)
    cases = [
        ("延吉市".encode() * 400, ".txt", "RAG_LIMITS__MAX_CHARS"),  # 1,200 chars
        (b"x" * 5000, ".txt", "RAG_LIMITS__MAX_CHARS (x4)"),  # refused before decoding
        (blank_pdf(11), ".pdf", "RAG_LIMITS__MAX_PDF_PAGES"),
        (blank_pdf(1, password="pw"), ".pdf", "encrypted PDF"),
        (blank_pdf(3)[:300], ".pdf", "unreadable PDF"),
        (b"<div>" * 51 + "深".encode() + b"</div>" * 51, ".html", "RAG_LIMITS__MAX_HTML_DEPTH"),
    ]
    for data, suffix, message in cases:
        with pytest.raises(LoadError, match=re.escape(message)):
            load_bytes(data, suffix, small)
    # within the limits, the same kinds load
    assert load_bytes("延吉市".encode() * 300, ".txt", small).text
    flat = b"<p>" + "深".encode() + b"<br><img src=x></p>" * 60
    assert load_bytes(flat, ".html", small).text.startswith("深")
    assert html_depth(b"<div><p>a</p><p>b<br/></p></div><!-- <x> -->", 100) == 2
