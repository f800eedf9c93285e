"""Follow-up questions made standalone from the conversation, deterministically.

A follow-up ("批次呢?", "2018年呢?", "上一年实际涨了多少?", "And how many communities were set
up?") leaves out what the earlier turns said: the place, the report or year, the indicator.
``resolve`` reads the slots of each user turn (``parse``: place, report year, period year or a
year relative to the previous one, topic, and whether the turn asks *which* place or year) and
writes the follow-up as a question that stands alone, in milliseconds and with every backend:

- an elliptical turn ("X呢?", "What about X?") is the previous question with X put in the slot
  X fills: a year replaces the year, a place the place, a word of a contrast set its
  counterpart (城市 → 农村, 人次 → 批次), anything else the topic;
- any other turn that leaves out a place, a time or a topic inherits them from the previous
  (already standalone) question, and a relative year (上一年, that year) becomes a year;
- a turn that names its own place or year starts a new scope and inherits no place or year
  (a topic switch inherits nothing it contradicts); a turn that asks which place or which year
  inherits no place or year either.

Slots are read from the folded text (simplified script, half width: same offsets), so a
traditional-script follow-up resolves like a simplified one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rag.schemas import Turn
from rag.text import NOT_REGION, fold

Span = tuple[int, int]


def _words(text: str) -> frozenset[str]:
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
_ASKS_PLACE = re.compile(
    r"哪(?:一|个|些|座)?(?:个)?(?:城市|地区|地方|区县|区|县|市|省|里|儿)|何地|"
    r"\bwhich (?:cit|district|count|place|region|area)|\bwhere\b",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(r"哪(?:一)?年|何年|何时|什么时候|\bwhich year|\bwhen\b", re.IGNORECASE)
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
_LEAD_ZH = re.compile(r"^(?:那么|那末|那(?![个里儿年一些])|而|另外|还有|此外|再)\s*[,，]?\s*")
_LEAD_EN = re.compile(r"^\s*(?:and|but|so|then|also)\b[\s,]*", re.IGNORECASE)
_PLACE_WORD = re.compile(
    r"那里|那儿|当地|该市|该区|该县|该地|此地|(?:这|那)个(?:地方|城市|地区|区|县|市)"
)
_ELLIPSIS_ZH = re.compile(
    r"^(?:那么|那末|那(?![个里儿年一些])|而|还有|另外)?\s*(.{1,40}?)\s*(?:的话)?呢\s*[?？]*$"
)
_ELLIPSIS_EN = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(.+?)\s*[?.!]*$", re.IGNORECASE)
_MODIFIER = re.compile(r"同比|环比|比上年|较上年|比去年|年均|平均每年|累计|分别")
_ASKS = re.compile(r"多少|几|哪|什么|怎样|怎么|如何|是否|吗|高还是低|\?|？")
# Where the predicate of a question begins: the topic (indicator) ends before it.
_PREDICATE = _words(
    "同比 环比 比 较 平均 平均每年 年均 每年 全年 累计 分别 计划 要 将 拟 力争 预计 提出 安排 "
    "目标 预期 预期目标 规模 涨幅 增幅 降幅 增速 增长 下降 减少 降低 提高 上涨 上升 增加 调整 "
    "控制 保持 达到 达 实现 完成 有 是 为 多少 几 哪 什么 怎样 如何"
)
# Nouns that name what kind of figure is asked, not what it is about.
_NOT_TOPIC = _words("实际 目标 预定 预期 情况 数字 数据 数量 年初 年底 全年 今年 多少")
_CONTENT_FLAGS = ("n", "vn", "nz", "nt", "nr", "j", "eng", "s", "l", "b", "an")
_CONNECTIVES = re.compile(r"(?:[\s,，:：、]|提出的|拟安排的|安排的|确定的|的|中|里)+")
# Words that stand for each other: "农村呢?" after a question about 城市.
CONTRASTS: tuple[frozenset[str], ...] = tuple(
    _words(s)
    for s in (
        "城市 城镇 农村 乡村",
        "人次 批次 件次",
        "出口 进口",
        "收入 支出",
        "上半年 下半年 一季度 二季度 三季度 四季度",
        "男性 女性",
        "目标 实际",
        "同比 环比",
        "第一产业 第二产业 第三产业",
        "小学 初中 高中",
        "存款 贷款",
    )
)
CONTRASTS_EN: tuple[frozenset[str], ...] = tuple(
    _words(s)
    for s in (
        "urban rural",
        "exports imports",
        "income expenditure spending",
        "target actual",
        "batches visits",
        "male female",
        "deposits loans",
    )
)
_EN_STOP = _words(
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


def _tokens(text: str) -> list[Token]:
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
    def has_time(self) -> bool:
        return self.anchor is not None or self.relative is not None

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
    asks_place = bool(_ASKS_PLACE.search(text))
    asks_time = bool(_ASKS_TIME.search(text))
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
    tokens = _tokens(text)
    places = _places_zh(tokens)
    rel = _RELATIVE_ZH_RE.search(text)
    parsed = Parsed(
        text=text,
        lang=lang,
        tokens=tokens,
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
    return [text[s:e] for s, e in _places_zh(_tokens(text))]


def place_names(place: str) -> list[str]:
    """The forms a place goes by in documents: 兰州城关区 → 兰州城关区, 兰州, 城关区, 城关."""
    parts = [
        place,
        *(place[s:e] for s, e in _places_zh(_tokens(place)) if (s, e) != (0, len(place))),
    ]
    parts += [t.word for t in _tokens(place) if t.flag in ("ns", "n") and len(t.word) >= 2]
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
        if t.word in _PREDICATE or _ASKS.fullmatch(t.word) or t.word in ("的", "呢"):
            if run:
                break
            if t.word == "的":
                continue
            break
        if t.flag.startswith(_CONTENT_FLAGS) or (t.flag in ("v", "m", "q") and run):
            run.append(t)
        elif run:
            break
        else:
            break
    while run and (run[-1].flag in ("m", "q", "v") or run[-1].word in _NOT_TOPIC):
        run.pop()
    while run and run[0].word in _NOT_TOPIC:
        run.pop(0)
    if not run:
        return p
    return _replace(p, topic=(run[0].start, run[-1].end))


def _replace(p: Parsed, **changes: Any) -> Parsed:
    from dataclasses import replace

    return replace(p, **changes)


def _has_topic(p: Parsed) -> bool:
    """Whether a question names something of its own to ask about (社区 in 建立了多少个社区)."""
    if p.lang == "en":
        return True  # English topics are not parsed: an English follow-up keeps its own words
    taken = [s for s in (p.place, p.report, p.year, p.relative) if s]
    return p.topic is not None or any(
        t.flag.startswith(_CONTENT_FLAGS)
        and len(t.word) >= 2
        and t.word not in _PREDICATE
        and t.word not in _NOT_TOPIC
        and not any(s[0] <= t.start < s[1] for s in taken)
        for t in p.tokens
    )


@dataclass(frozen=True)
class Resolved:
    """A question as asked, the standalone question answered, and the slots it inherited."""

    question: str
    standalone: str
    followup: bool = False
    inherited: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def _apply(text: str, edits: list[_Edit]) -> str:
    for e in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: e.start] + e.text + text[e.end :]
    return text


def _year_text(year: int, lang: str) -> str:
    return f"{year}年" if lang == "zh" else str(year)


def _time_edit(prev: Parsed, year: int) -> tuple[_Edit, str]:
    """Put ``year`` where the previous question says its year (a report of year Y speaks of
    Y−1's results: both move together)."""
    lang = prev.lang
    if prev.year and prev.year_value is not None:
        edit = _Edit(*prev.year, _year_text(year, lang))
        if prev.report and prev.report_year is not None:
            shift = prev.report_year - prev.year_value
            report = prev.slot(prev.report).replace(str(prev.report_year), str(year + shift), 1)
            return edit, report  # the caller applies the report edit too
        return edit, ""
    if prev.report and prev.report_year is not None:
        report = prev.slot(prev.report).replace(str(prev.report_year), str(year), 1)
        return _Edit(*prev.report, report), ""
    if lang == "en":
        m = re.search(r"\s*[?.!]*$", prev.text)
        at = m.start() if m else len(prev.text)
        return _Edit(at, at, f" in {year}"), ""
    at = prev.place[1] if prev.place else 0
    return _Edit(at, at, _year_text(year, lang)), ""


def _ellipsis(q: Parsed, prev: Parsed, inherited: dict[str, str]) -> str | None:
    """ "X呢?" / "What about X?": the previous question with X in the slot it fills."""
    m = (_ELLIPSIS_ZH if q.lang == "zh" else _ELLIPSIS_EN).match(q.text)
    if not m or (q.lang == "zh" and _ASKS.search(m.group(1))):
        return None
    edits: list[_Edit] = []
    filled = [s for s in (q.place, q.year, q.relative, q.report) if s]
    rest = m.group(1)
    for s in filled:
        a, b = max(s[0], m.start(1)) - m.start(1), min(s[1], m.end(1)) - m.start(1)
        if a < b:
            rest = rest[:a] + " " * (b - a) + rest[b:]
    rest = re.sub(r"^[\s的,，]+|[\s的,，]+$", "", re.sub(r"\s{2,}", " ", rest)).strip()
    rest = re.sub(r"^(?:的\s*)+", "", rest)
    year = q.year_value if q.year_value is not None else q.report_year
    if year is None and q.relative and prev.anchor is not None:
        year = prev.anchor + q.offset
    if year is not None:
        edit, report = _time_edit(prev, year)
        edits.append(edit)
        if report and prev.report:
            edits.append(_Edit(*prev.report, report))
    elif prev.anchor is not None:
        inherited["time"] = _year_text(prev.anchor, prev.lang)
    if q.place:
        place = q.slot(q.place)
        if prev.place:
            edits.append(_Edit(*prev.place, place))
        else:
            edits.append(_Edit(0, 0, place if q.lang == "zh" else ""))
    elif prev.place:
        inherited["place"] = prev.slot(prev.place)
    if not rest:
        if prev.topic:
            inherited["topic"] = prev.slot(prev.topic)
        return _apply(prev.text, edits) if edits else None
    for group in CONTRASTS if q.lang == "zh" else CONTRASTS_EN:
        words = set(re.findall(r"[a-z]+", rest.lower())) if q.lang == "en" else set()
        mine = next((w for w in group if (w in words if q.lang == "en" else w in rest)), None)
        if mine is None:
            continue
        low = prev.text.lower() if q.lang == "en" else prev.text
        theirs = [
            (m.start(), m.group())
            for w in group
            if w != mine
            for m in [re.search(rf"\b{w}\b" if q.lang == "en" else re.escape(w), low)]
            if m
        ]
        if theirs:
            at, word = min(theirs)
            edits.append(_Edit(at, at + len(word), mine))
            if prev.topic and not (prev.topic[0] <= at < prev.topic[1]):
                inherited["topic"] = prev.slot(prev.topic)  # not 集体访人次 once 人次 is 批次
            return _apply(prev.text, edits)
    if q.lang == "en":
        return f"{_apply(prev.text, edits)} ({rest})"
    if _MODIFIER.fullmatch(rest):  # "同比呢?": the same question, so qualified
        at = prev.topic[1] if prev.topic else prev.context_end
        edits.append(_Edit(at, at, rest))
        return _apply(prev.text, edits)
    own_predicate = any(t.word in _PREDICATE for t in _tokens(rest))
    if prev.topic and not own_predicate:
        edits.append(_Edit(*prev.topic, rest))
        return _apply(prev.text, edits)
    start = prev.topic[0] if prev.topic else prev.context_end
    head = _apply(prev.text[:start], [e for e in edits if e.end <= start])
    return f"{head}{rest}是多少?"


def _inherit(q: Parsed, prev: Parsed, inherited: dict[str, str]) -> str:
    """A full follow-up with the scope and topic it leaves out, taken from the previous turn."""
    own_scope = q.place is not None or q.anchor is not None
    body = q.text
    edits: list[_Edit] = []
    prefix: list[str] = []
    lang = q.lang
    place = prev.slot(prev.place) if prev.place else ""
    if q.lang == "zh":
        lead = _LEAD_ZH.match(body)
        if lead and lead.end() < len(body):
            edits.append(_Edit(0, lead.end(), ""))
        for w in _PLACE_WORD.finditer(body):
            if place:
                edits.append(_Edit(*w.span(), place))
                inherited["place"] = place
    else:
        lead = _LEAD_EN.match(body)
        if lead:
            edits.append(_Edit(0, lead.end(), ""))
        if place:
            for w in re.finditer(r"\bthere\b", body):
                edits.append(_Edit(*w.span(), f"in {place}"))
                inherited["place"] = place
    year: int | None = None
    said = ""
    if q.relative and prev.anchor is not None:
        year = prev.anchor + q.offset
        edits.append(_Edit(*q.relative, "" if lang == "zh" else f"in {year}"))
        if prev.report and prev.year is None and q.offset <= 0 and lang == "zh":
            said = "去年" if q.offset else "今年"  # how the report itself names that year
    elif not own_scope and not q.asks_time and prev.anchor is not None:
        year = prev.year_value  # the report scope below carries a report's own year
    if not own_scope and not q.asks_time and prev.report and not q.report:
        report = prev.slot(prev.report)
        prefix.append(report if report.startswith(("据", "根据", "按照")) else f"据{report}")
        inherited["report"] = report
    if not own_scope and not q.asks_place and place and "place" not in inherited:
        prefix.append(place)
        inherited["place"] = place
    inline = next((i for i, e in enumerate(edits) if e.text == place and place), None)
    if year is not None and lang == "zh" and inline is not None and not prefix:
        # "那个城市的…" → "延吉市2016年的…": the year goes with the place it replaced
        edits[inline] = _Edit(edits[inline].start, edits[inline].end, place + f"{year}年")
        inherited["time"] = f"{year}年"
    elif year is not None and lang == "zh":
        prefix.append(f"{said}（{year}年）" if said else _year_text(year, lang))
        inherited["time"] = _year_text(year, lang)
    elif year is not None:
        inherited["time"] = str(year)
    if not _has_topic(q) and prev.topic:
        topic = prev.slot(prev.topic)
        prefix.append(topic)
        inherited["topic"] = topic
    text = _apply(body, edits).strip()
    if lang == "en":
        text = text[:1].upper() + text[1:]
        extra = []
        if "place" in inherited and not re.search(rf"\b{re.escape(place)}\b", text):
            extra.append(f"in {place}")
        if year is not None and not q.relative:
            extra.append(f"in {year}")
        if "report" in inherited:
            extra.append(f"(per the {prev.report_year} government work report)")
        m = re.search(r"[?.!]*$", text)
        cut = m.start() if m else len(text)
        return " ".join([text[:cut], *extra]) + (text[cut:] or "?")
    if not prefix:
        return text
    head = "".join(prefix[:1]) + ("，" if prefix[0].startswith("据") else "") + "".join(prefix[1:])
    return head + text


def resolve_turn(question: str, previous: str | None, previous_answer: str = "") -> Resolved:
    """One turn made standalone against the previous (already standalone) question."""
    if previous is None:
        return Resolved(question, question)
    q, prev = parse(question), parse(previous)
    if prev.asks_place and prev.place is None and previous_answer:
        # "哪个城市…最多?" was answered with a place: a follow-up about "that city" means it.
        found = parse(previous_answer)
        if found.place:
            prev = _replace(
                prev,
                text=found.slot(found.place) + prev.text,
                place=(0, found.place[1] - found.place[0]),
                **{
                    k: (
                        s[0] + found.place[1] - found.place[0],
                        s[1] + found.place[1] - found.place[0],
                    )
                    for k in ("report", "year", "topic")
                    if (s := getattr(prev, k))
                },
            )
    own_scope = q.place is not None or q.anchor is not None
    leans = q.cue or (not own_scope and not q.asks_place and not q.asks_time) or q.relative
    if not leans or q.lang != prev.lang:
        return Resolved(question, question)
    inherited: dict[str, str] = {}
    text = _ellipsis(q, prev, inherited) if q.cue else None
    if text is None:
        text = _inherit(q, prev, inherited)
    if text == q.text and not inherited:
        return Resolved(question, question)
    return Resolved(question, text, followup=True, inherited=inherited)


def resolve(question: str, history: Sequence[Turn] = ()) -> Resolved:
    """``question`` as a standalone question, given the earlier turns of the conversation (each
    earlier user turn is resolved in order, so a slot carries over several follow-ups)."""
    previous: str | None = None
    answer = ""
    for turn in history:
        if turn.role == "user":
            previous = resolve_turn(turn.content, previous, answer).standalone
            answer = ""
        else:
            answer = turn.content
    return resolve_turn(question, previous, answer)


def warm_up() -> None:
    """Load jieba's part-of-speech dictionary now rather than on the first follow-up."""
    _tokens("龙港市")


_FIGURE = re.compile(r"\d+(?:\.\d+)?")


def accept_rewrite(rewrite: str, resolved: Resolved, history: Sequence[Turn]) -> bool:
    """A model's rewrite of a follow-up stands only if it keeps every slot the deterministic
    resolution inherited and adds no figure that the conversation's questions do not hold."""
    text = fold(rewrite).strip()
    if not text or len(text) > 3 * max(len(resolved.standalone), 40):
        return False
    asked = fold(
        " ".join(
            [
                resolved.question,
                resolved.standalone,
                *(t.content for t in history if t.role == "user"),
            ]
        )
    )
    known = set(_FIGURE.findall(asked))
    keeps = all(fold(v) in text for v in resolved.inherited.values())
    return keeps and all(n in known for n in _FIGURE.findall(text))
