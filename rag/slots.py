"""The slots of a question: what it names and asks, read without a model.

``parse(question)`` reads, from the folded text (simplified script, half width: the same
offsets, so a traditional-script question reads like a simplified one): the place (a jieba ``ns``
word with what completes it: 龙港 + 市, 长春 + 二道区), the report (``2019年政府工作报告``,
``据…报告``), the period year, a year said relative to another (上一年, that year …), the topic (the
content words between the scope and the predicate), whether it asks *which* place or year, and
whether it leans on an earlier turn (那…, …呢?, 它, 其中, And …, What about …). The conversation
(``rag/conversation.py``) resolves follow-ups with them; the answer chain scopes a search by the
report year and the places a question names. English place names are matched to a corpus's
places by their pinyin (``pinyin_index``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from rag.text import NOT_REGION, fold

Span = tuple[int, int]


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LATIN = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u3400-\u9fff]")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)\s*(?:年(?!代))?")
_REPORT = re.compile(
    r"(?:据|根据|按照|在)?\s*((?:19|20)\d\d)\s*年(?:的)?\s*[《“]?(?:国务院)?(?:政府工作)?报告[》”]?"
)
# Years said relative to the previous turn's year ("比上年" compares, it is not a year).
_RELATIVE_ZH = {
    **dict.fromkeys(("那一年", "这一年", "同年", "当年", "该年", "那年", "同一年"), 0),
    **dict.fromkeys(("上一年", "前一年", "头一年", "上年", "去年"), -1),
    **dict.fromkeys(("次年", "下一年", "第二年", "后一年", "翌年"), 1),
}
_RELATIVE_ZH_RE = re.compile(
    r"(?<![比较同])(?:" + "|".join(sorted(_RELATIVE_ZH, key=len, reverse=True)) + ")"
)
_RELATIVE_EN = {
    **dict.fromkeys(("that year", "the same year", "that same year"), 0),
    **dict.fromkeys(
        ("the year before", "the previous year", "the prior year", "a year earlier"), -1
    ),
    **dict.fromkeys(("the next year", "the following year", "a year later"), 1),
}
_RELATIVE_EN_RE = re.compile(
    r"\b(?:" + "|".join(sorted(_RELATIVE_EN, key=len, reverse=True)) + r")\b", re.IGNORECASE
)
ASKS_PLACE = re.compile(
    r"哪(?:一|个|些|座)?(?:个)?(?:城市|地区|地方|区县|区|县|市|省|里|儿)|何地|"
    r"\bwhich (?:cit|district|count|place|region|area)|\bwhere\b",
    re.IGNORECASE,
)
ASKS_TIME = re.compile(r"哪(?:一)?年|何年|何时|什么时候|\bwhich year|\bwhen\b", re.IGNORECASE)
# Words that make a turn lean on the one before.
_CUE_ZH = re.compile(
    r"^(?:那么|那末|那|而|另外|还有|此外|再|其中|它们?|其|该|这个|那个|这些|那些)|呢\s*[?？!！。]*$|"
    r"那里|那儿|当地|该市|该区|该县|该地|此地|(?:这|那)个(?:地方|城市|地区|区|县|市)|"
    r"其中|它们?|" + _RELATIVE_ZH_RE.pattern
)
_CUE_EN = re.compile(
    r"^\s*(?:and|but|so|then|also|what about|how about)\b|"
    r"\b(?:it|its|they|them|their|there|those|these|that year|the same)\b",
    re.IGNORECASE,
)
ASKS = re.compile(r"多少|几|哪|什么|怎样|怎么|如何|是否|吗|高还是低|\?|？")
# Where the predicate of a question begins: the topic (indicator) ends before it.
PREDICATE = words(
    "同比 环比 比 较 平均 平均每年 年均 每年 全年 累计 分别 计划 要 将 拟 力争 预计 提出 安排 "
    "目标 预期 预期目标 规模 涨幅 增幅 降幅 增速 增长 下降 减少 降低 提高 上涨 上升 增加 调整 "
    "控制 保持 达到 达 实现 完成 有 是 为 多少 几 哪 什么 怎样 如何"
)
# Nouns that name what kind of figure is asked, not what it is about.
_NOT_TOPIC = words("实际 目标 预定 预期 情况 数字 数据 数量 年初 年底 全年 今年 多少")
_CONTENT_FLAGS = ("n", "vn", "nz", "nt", "nr", "j", "eng", "s", "l", "b", "an")
_CONNECTIVES = re.compile(r"(?:[\s,，:：、]|提出的|拟安排的|安排的|确定的|的|中|里)+")
_EN_STOP = words(
    "How What Which Who When Where Why Did Does Do Is Are Was Were And But So Then Also "
    "The In Of By For To From On At According If Please Tell Can Could Should GDP CPI M2 "
    "I January February March April May June July August September October November "
    "December"
)
_EN_PLACE = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:District|City|County|New Area))?\b")


@lru_cache(maxsize=1)
def _pseg() -> Any:
    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)
    return pseg


@dataclass(frozen=True)
class Token:
    word: str
    flag: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.word)


def tokens(text: str) -> list[Token]:
    out, pos = [], 0
    for w in _pseg().cut(text):
        out.append(Token(w.word, w.flag, pos))
        pos += len(w.word)
    return out


def _places_zh(tokens: list[Token]) -> list[Span]:
    """Place names: a jieba ``ns`` word with what completes it (龙港 + 市, 长春 + 二道区)."""
    spans: list[Span] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.flag == "ns" and len(t.word) >= 2 and t.word not in NOT_REGION:
            start, end = t.start, t.end
            j = i + 1
            while j < len(tokens):
                n = tokens[j]
                admin = n.word in ("市", "区", "县", "州", "镇", "旗", "省", "新区")
                district = n.flag in ("n", "ns") and 3 <= len(n.word) <= 4 and n.word[-1] in "区县"
                more = n.flag == "ns" and len(n.word) >= 2 and n.word not in NOT_REGION
                if not (admin or district or more):
                    break
                end = n.end
                j += 1
            nxt = tokens[j] if j < len(tokens) else None
            bare = j == i + 1 and t.word[-1] not in "市区县州镇旗省"
            if not (bare and nxt is not None and nxt.flag in ("n", "nz", "vn")):
                spans.append((start, end))  # not 广义 in 广义货币
            i = j
        else:
            i += 1
    return spans


@dataclass(frozen=True)
class Parsed:
    """The slots of one question (offsets into ``text``, the folded question)."""

    text: str
    lang: str
    tokens: list[Token] = field(default_factory=list, repr=False)
    place: Span | None = None
    report: Span | None = None  # "2019年政府工作报告" (with 据 …)
    report_year: int | None = None
    year: Span | None = None  # the first year outside the report phrase, as written
    year_value: int | None = None
    relative: Span | None = None  # 上一年, the year before …
    offset: int = 0  # of the relative year
    topic: Span | None = None
    asks_place: bool = False
    asks_time: bool = False
    cue: bool = False

    def slot(self, span: Span | None) -> str:
        return self.text[span[0] : span[1]] if span else ""

    @property
    def anchor(self) -> int | None:
        """The year the question is about: its period year, else its report's year."""
        return self.year_value if self.year_value is not None else self.report_year

    @property
    def own_scope(self) -> bool:
        """Whether the question names its own place or year (then it inherits neither)."""
        return self.place is not None or self.anchor is not None

    @property
    def context_end(self) -> int:
        """Where the question's scope (place, report, year) ends, connectives included."""
        ends = [s[1] for s in (self.place, self.report, self.year) if s]
        end = max(ends, default=0)
        if self.topic and self.topic[0] >= end:
            return self.topic[0]
        m = _CONNECTIVES.match(self.text, end) if self.lang == "zh" else None
        return m.end() if m else end


@lru_cache(maxsize=4096)
def parse(question: str) -> Parsed:
    """The slots of a question in either script, or in English (cached: a conversation's
    earlier turns are parsed again with every follow-up)."""
    text = fold(question).strip()
    lang = "en" if _LATIN.search(text) and not _CJK.search(text) else "zh"
    asks_place = bool(ASKS_PLACE.search(text))
    asks_time = bool(ASKS_TIME.search(text))
    report_m = _REPORT.search(text) if lang == "zh" else None
    report = report_m.span() if report_m else None
    year_m = next(
        (m for m in _YEAR.finditer(text) if not (report and report[0] <= m.start() < report[1])),
        None,
    )
    if lang == "en":
        rel = _RELATIVE_EN_RE.search(text)
        offset = _RELATIVE_EN[rel.group().lower()] if rel else 0
        places = [
            m.span()
            for m in _EN_PLACE.finditer(text)
            if m.group().split()[0] not in _EN_STOP
            and not (m.start() == 0 and " " not in m.group())
        ]
        return Parsed(
            text=text,
            lang=lang,
            place=places[0] if places else None,
            year=year_m.span() if year_m else None,
            year_value=int(year_m.group(1)) if year_m else None,
            relative=rel.span() if rel else None,
            offset=offset,
            asks_place=asks_place,
            asks_time=asks_time,
            cue=bool(_CUE_EN.search(text)),
        )
    toks = tokens(text)
    places = _places_zh(toks)
    rel = _RELATIVE_ZH_RE.search(text)
    parsed = Parsed(
        text=text,
        lang=lang,
        tokens=toks,
        place=places[0] if places else None,
        report=report,
        report_year=int(report_m.group(1)) if report_m else None,
        year=year_m.span() if year_m else None,
        year_value=int(year_m.group(1)) if year_m else None,
        relative=rel.span() if rel else None,
        offset=_RELATIVE_ZH[rel.group()] if rel else 0,
        asks_place=asks_place,
        asks_time=asks_time,
        cue=bool(_CUE_ZH.search(text)),
    )
    return _with_topic(parsed)


def places_in(question: str) -> list[str]:
    """The place names a (Chinese) question names: 龙港市, 兰州城关区 …"""
    text = fold(question)
    if not _CJK.search(text):
        return []
    return [text[s:e] for s, e in _places_zh(tokens(text))]


def place_names(place: str) -> list[str]:
    """The forms a place goes by in documents: 兰州城关区 → 兰州城关区, 兰州, 城关区, 城关."""
    toks = tokens(place)
    parts = [place, *(place[s:e] for s, e in _places_zh(toks) if (s, e) != (0, len(place)))]
    parts += [t.word for t in toks if t.flag in ("ns", "n") and len(t.word) >= 2]
    names = parts + [p[:-1] for p in parts if len(p) >= 3 and p[-1] in "市区县省州镇旗"]
    return [n for n in dict.fromkeys(names) if len(n) >= 2 and n not in NOT_REGION]


def pinyin_index(places: Iterable[str]) -> dict[str, str]:
    """Place names by their toneless pinyin (``longgang`` → 龙港, ``chengyang`` → 城阳区), for
    the English names of a corpus's places; names of 5 letters or more (no short collisions)."""
    from pypinyin import lazy_pinyin

    out: dict[str, str] = {}
    for place in places:
        for name in place_names(place):
            key = "".join(lazy_pinyin(name)).lower()
            if len(key) >= 5 and key.isascii() and key.isalpha():
                out.setdefault(key, place)
    return out


def english_places(question: str, index: dict[str, str]) -> dict[str, str]:
    """The corpus places an English question names: {"Longgang": "龙港"}."""
    return {
        w: index[w.lower()] for w in re.findall(r"\b[A-Z][a-z]+\b", question) if w.lower() in index
    }


def _with_topic(p: Parsed) -> Parsed:
    """The topic: the first run of content words after the scope, up to the predicate."""
    taken = [s for s in (p.place, p.report, p.year, p.relative) if s]
    start = p.context_end
    run: list[Token] = []
    for t in p.tokens:
        if t.end <= start or any(s[0] <= t.start < s[1] for s in taken):
            continue
        if t.word in PREDICATE or ASKS.fullmatch(t.word) or t.word in ("的", "呢"):
            if run:
                break
            if t.word == "的":
                continue
            break
        if t.flag.startswith(_CONTENT_FLAGS) or (t.flag in ("v", "m", "q") and run):
            run.append(t)
        else:
            break
    while run and (run[-1].flag in ("m", "q", "v") or run[-1].word in _NOT_TOPIC):
        run.pop()
    while run and run[0].word in _NOT_TOPIC:
        run.pop(0)
    if not run:
        return p
    return replace(p, topic=(run[0].start, run[-1].end))


def has_topic(p: Parsed) -> bool:
    """Whether a question names something of its own to ask about (社区 in 建立了多少个社区)."""
    if p.lang == "en":
        return True  # English topics are not parsed: an English follow-up keeps its own words
    taken = [s for s in (p.place, p.report, p.year, p.relative) if s]
    return p.topic is not None or any(
        t.flag.startswith(_CONTENT_FLAGS)
        and len(t.word) >= 2
        and t.word not in PREDICATE
        and t.word not in _NOT_TOPIC
        and not any(s[0] <= t.start < s[1] for s in taken)
        for t in p.tokens
    )
