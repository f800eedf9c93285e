"""Follow-up questions made standalone from the conversation, deterministically.

A follow-up ("批次呢?", "2018年呢?", "上一年实际涨了多少?", "And how many communities were set
up?") leaves out what the earlier turns said: the place, the report or year, the indicator.
``resolve`` reads the slots of each user turn (``rag.slots.parse``: place, report year, period year or a
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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.schemas import Turn
from rag.slots import ASKS, PREDICATE, Parsed, has_topic, parse, tokens, words
from rag.text import fold

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
# Words that stand for each other: "农村呢?" after a question about 城市.
CONTRASTS: tuple[frozenset[str], ...] = tuple(
    words(s)
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
    words(s)
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


def _time_edits(prev: Parsed, year: int) -> list[_Edit]:
    """Put ``year`` where the previous question says its year (a report of year Y speaks of
    Y−1's results: both move together)."""
    lang = prev.lang
    if prev.year and prev.year_value is not None:
        edits = [_Edit(*prev.year, _year_text(year, lang))]
        if prev.report and prev.report_year is not None:
            shift = prev.report_year - prev.year_value
            report = prev.slot(prev.report).replace(str(prev.report_year), str(year + shift), 1)
            edits.append(_Edit(*prev.report, report))
        return edits
    if prev.report and prev.report_year is not None:
        report = prev.slot(prev.report).replace(str(prev.report_year), str(year), 1)
        return [_Edit(*prev.report, report)]
    if lang == "en":
        m = re.search(r"\s*[?.!]*$", prev.text)
        at = m.start() if m else len(prev.text)
        return [_Edit(at, at, f" in {year}")]
    at = prev.place[1] if prev.place else 0
    return [_Edit(at, at, _year_text(year, lang))]


def _ellipsis(q: Parsed, prev: Parsed, inherited: dict[str, str]) -> str | None:
    """ "X呢?" / "What about X?": the previous question with X in the slot it fills."""
    m = (_ELLIPSIS_ZH if q.lang == "zh" else _ELLIPSIS_EN).match(q.text)
    if not m or (q.lang == "zh" and ASKS.search(m.group(1))):
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
        edits += _time_edits(prev, year)
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
    own_predicate = any(t.word in PREDICATE for t in tokens(rest))
    if prev.topic and not own_predicate:
        edits.append(_Edit(*prev.topic, rest))
        return _apply(prev.text, edits)
    start = prev.topic[0] if prev.topic else prev.context_end
    head = _apply(prev.text[:start], [e for e in edits if e.end <= start])
    return f"{head}{rest}是多少?"


def _inherit(q: Parsed, prev: Parsed, inherited: dict[str, str]) -> str:
    """A full follow-up with the scope and topic it leaves out, taken from the previous turn."""
    own_scope = q.own_scope
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
        edits[inline] = _Edit(
            edits[inline].start, edits[inline].end, place + _year_text(year, lang)
        )
        inherited["time"] = _year_text(year, lang)
    elif year is not None:
        if lang == "zh":
            prefix.append(f"{said}（{year}年）" if said else _year_text(year, lang))
        inherited["time"] = _year_text(year, lang)
    if not has_topic(q) and prev.topic:
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
            prev = parse(found.slot(found.place) + prev.text)
    leans = q.cue or (not q.own_scope and not q.asks_place and not q.asks_time) or q.relative
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
    tokens("龙港市")


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
