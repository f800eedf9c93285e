"""Pure text work: boilerplate removal (as kept spans), index normalization, document metadata.

Cleaning never rewrites the text: it returns the spans of the original string that are content,
so every offset stays valid. Normalization (traditional→simplified, full→half width) produces the
form that is embedded and tokenized; what is stored and shown is always the original.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

import opencc

Span = tuple[int, int]


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


_DASHES = re.compile(r"[‐‑‒–—―−－﹣]+")
_SPACES = re.compile(r"[ \t\u3000\xa0]+")


def to_simplified(text: str) -> str:
    return str(_t2s().convert(text))


def fold(text: str) -> str:
    """Simplified script and half width, character for character: ``len(fold(t)) == len(t)``,
    so a match in the folded text has the same offsets in the original."""
    simple = to_simplified(text)
    if len(simple) != len(text):
        simple = "".join(c if len(s := to_simplified(c)) != 1 else s for c in text)
    return "".join(w if len(w := unicodedata.normalize("NFKC", c)) == 1 else c for c in simple)


def normalize(text: str) -> str:
    """Index form: traditional→simplified, NFKC width folding (％→%, ，→,), one dash, one space."""
    text = unicodedata.normalize("NFKC", to_simplified(text))
    text = _DASHES.sub("-", text)
    return _SPACES.sub(" ", text)


# Page furniture, not content. Matched against a normalized (simplified, half-width) piece of a
# line (see ``_pieces``), so each pattern is written once in simplified script.
_BOILERPLATE = re.compile(
    "|".join(
        [
            r"^导航(菜单|栏)?$",
            r"^(网站)?首页\s*[>|]",
            r"打印本页|关闭窗口|打印此页|【\s*(打印|关闭)\s*】|^\[?(打印|关闭)\]?$",
            r"^分享到",
            r"扫一扫|扫描二维码",
            r"公众号$",
            r"^原文(链接|地址)\s*[:：]",
            r"^本文(地址|链接)\s*[:：]",
            r"^【?\s*(责任编辑|责编)",
            r"^(编辑|审核|监制|摄影|校对|记者|作者|供稿)\s*[:：]",
            r"记者\s*[:：]\s*\S{1,12}$",
            r"^来源\s*[:：].{0,40}$",
            r"^来源\s*[:：].*(作者|发布时间)",
            r"^发布(于|时间)\s*[:：]?\s*\d{4}",
            r"阅读(量|次数)\s*[:：]?\s*\d*$",
            r"^留言与评论|^验证码\s*[:：]?|^相关(素材|阅读|文章|新闻)$",
            r"设置为.?星标.?置顶|不再错过精彩内容",
            r"版权所有|copyright|©|all rights reserved",
            r"如有侵犯您的权益|如有侵权|请联系本站|不代表本(站|网)(立场|观点)",
            r"^(上一篇|下一篇)\s*[:：]",
            r"意见反馈留言板|ICP备|公网安备",
            r"【本文结束】|(如需|未经).{0,6}转载|转载请.{0,4}注明",
        ]
    ),
    re.IGNORECASE,
)
# Furniture is short: a longer piece that matches is content that mentions one of those words
# (a news story about copyright), and is kept.
_FURNITURE_MAX = 150

# A piece that opens a site footer: it and everything after it are dropped, when it stands in
# the last part of the document (a copyright notice in the body is content).
_FOOTER_START = re.compile(r"(版权|免责)(与免责)?(声明|说明)|^凡本网(注明|摘录|转载)")
_FOOTER_ZONE = 0.6

# A news page's header: a timestamp or a byline, then 正文： ("body:"), often with the whole
# article after it on the same line. The header goes; the article stays.
_HEADER = re.compile(r"^[^。！？!?\n]{0,80}?正文\s*[:：]")
# A portal's tail glued to the article's last sentence (``…处理。返回搜狐，查看更多责任编辑：``).
_TAIL = re.compile(r"返回搜狐\s*[,，]?\s*查看更多\s*(责任编辑\s*[:：]?\s*)?$")
# Where a line is cut into pieces that are judged one by one: after a sentence end, and at layout
# whitespace (two blanks, an ideographic space, a tab). A web page or a news article is often
# one line; dropping the line for its footer would drop the article with it.
_PIECE_END = re.compile(r"[。！？!?]+[”’」』）)\"']*|[ \t\u3000\xa0]{2,}|[\t\u3000]")


def iter_lines(text: str) -> Iterator[Span]:
    """Spans of the lines of ``text`` without their line breaks."""
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield pos, pos + len(body)
        pos += len(line)


def strip_span(text: str, start: int, end: int) -> Span:
    """Narrow a span to exclude surrounding whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def is_boilerplate(piece: str) -> bool:
    return len(piece) <= _FURNITURE_MAX and bool(_BOILERPLATE.search(normalize(piece).strip()))


def _pieces(text: str, start: int, end: int) -> Iterator[Span]:
    """Stripped pieces of the line ``text[start:end]``, cut at sentence ends and layout blanks."""
    for m in _PIECE_END.finditer(text, start, end):
        s, e = strip_span(text, start, m.end())
        if s < e:
            yield s, e
        start = m.end()
    s, e = strip_span(text, start, end)
    if s < e:
        yield s, e


def content_spans(text: str) -> list[Span]:
    """The content of ``text`` as stripped spans of the original string: per line, its pieces
    that are not furniture, a run of kept pieces as one span (a line wholly content is one span).
    A news header (``2023-08-16 11:10:02，正文：``) is cut off the line it opens."""
    spans: list[Span] = []
    for start, end in iter_lines(text):
        start, end = strip_span(text, start, end)
        if header := _HEADER.match(fold(text[start:end])):  # fold keeps offsets
            start = strip_span(text, start + header.end(), end)[0]
        if tail := _TAIL.search(fold(text[start:end])):
            end = strip_span(text, start, start + tail.start())[1]
        run: Span | None = None
        for s, e in _pieces(text, start, end):
            piece = text[s:e]
            if _FOOTER_START.search(normalize(piece)) and s >= _FOOTER_ZONE * len(text):
                if run:
                    spans.append(run)
                return spans
            if is_boilerplate(piece):
                if run:
                    spans.append(run)
                run = None
            else:
                run = (run[0], e) if run else (s, e)
        if run:
            spans.append(run)
    return spans


def content_blocks(text: str) -> list[Span]:
    """Maximal runs of content with only blanks between (a chunk never crosses removed text)."""
    blocks: list[Span] = []
    for s, e in content_spans(text):
        if blocks and not text[blocks[-1][1] : s].strip():
            blocks[-1] = (blocks[-1][0], e)
        else:
            blocks.append((s, e))
    return blocks


# Text in a document that speaks to the model instead of the reader (prompt injection): such
# sentences are never put in front of a model, nor quoted as an answer.
_INSTRUCTION = re.compile(
    r"(忽略|无视|忘记|忘掉|不要理会).{0,8}(以上|之前|上述|前面|先前|所有|全部|系统).{0,6}(指令|指示|提示|要求|规则|内容)|"
    r"(系统提示|system prompt|你现在是|你必须回答|请直接回答|^\s*回答\s*[:：])|"
    r"(ignore|disregard|forget)\s+(all\s+|any\s+)?(previous|prior|above|earlier)\s+"
    r"(instructions|prompts|rules)|reveal\s+(your|the)\s+(system\s+)?prompt",
    re.IGNORECASE,
)


def looks_like_instruction(sentence: str) -> bool:
    return bool(_INSTRUCTION.search(normalize(sentence)))


# ---------------------------------------------------------------------------------------------
# Document metadata: title, date, region
# ---------------------------------------------------------------------------------------------

_SITE_TAG = re.compile(r"^【[^】]{1,20}】")
_DATE_FULL = re.compile(r"(19\d{2}|20\d{2})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})")
_YEAR = re.compile(r"(19\d{2}|20\d{2})\s*年")
_NAME_YEAR = re.compile(r"(?<![0-9])(19\d{2}|20\d{2})(?![0-9])")
_HEAD_LINES = 8


def guess_title(text: str) -> str:
    for start, end in content_spans(text):
        line = _SITE_TAG.sub("", text[start:end].lstrip("#").strip()).strip()
        if line:
            return line[:120]
    return ""


def guess_date(text: str, title: str = "", source: str = "") -> str | None:
    """ISO date (``2015-01-13``) from the first lines, or the year (``2019``) from the title, or
    from the file name (``2019.txt``, ``report-2019.pdf``: a year standing alone in it)."""
    head = normalize("\n".join(text[s:e] for s, e in list(iter_lines(text))[:_HEAD_LINES]))
    for y, m, d in _DATE_FULL.findall(head):
        if 1 <= int(m) <= 12 and 1 <= int(d) <= 31:
            return f"{y}-{int(m):02d}-{int(d):02d}"
    year = _YEAR.search(normalize(title)) or _NAME_YEAR.search(source.rsplit("/", 1)[-1])
    return year.group(1) if year else None


_ADMIN_SUFFIX = re.compile(r"(省|市|区|县|州|镇|旗)$")
_DISTRICT_AFTER = re.compile(r"[\u4e00-\u9fff]{1,3}?[区县]")
NOT_REGION = {"中国", "中华人民共和国", "全国", "国家", "国务院", "城市", "城区", "城镇", "农村"}
_NATIONAL = re.compile(r"中华人民共和国|国务院|全国")
_REGION_WINDOW = 600


def guess_region(text: str, title: str = "") -> str | None:
    """The place a document is about, from place names (jieba ``ns``) in its title and opening.

    Each candidate scores its count in the opening, plus 3 when the title names it, plus 2 when it
    is a district or county: the most specific place the document keeps talking about wins
    (``城关区`` over ``兰州``, ``二道区`` in ``长春市二道区``).
    """
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)
    title_n = normalize(title)
    opening = normalize(title + "\n" + text[:_REGION_WINDOW])
    counts: dict[str, int] = {}
    pos = 0
    for w in pseg.cut(opening):
        word, pos = w.word, pos + len(w.word)
        if w.flag != "ns" or len(word) < 2 or word in NOT_REGION:
            continue
        counts[word] = counts.get(word, 0) + 1
        district = _DISTRICT_AFTER.match(opening, pos) if word.endswith("市") else None
        if district:  # 长春市二道区: jieba tags only the city
            counts[district.group()] = counts.get(district.group(), 0) + 1

    def score(name: str) -> int:
        stem = _ADMIN_SUFFIX.sub("", name) or name
        return (
            counts[name] + (3 if stem in title_n else 0) + (2 if name.endswith(("区", "县")) else 0)
        )

    if _NATIONAL.search(title_n) and not any(score(c) >= 3 for c in counts):
        return "全国"  # a national report: the places in its opening are examples, not its subject
    return max(counts, key=score) if counts else None


def index_text(title: str, region: str | None, text: str) -> str:
    """What is embedded and tokenized for a chunk: its document's title and region as context
    (so a place named in the question finds the document, and every chunk of it alike), then
    the chunk, all in the normalized form."""
    return normalize(f"{title} {region or ''}\n{text}")
