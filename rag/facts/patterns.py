"""The patterns of indicator statements, shared by extraction (``extract``) and question parsing
(``query``): figures with their units, change verbs, qualifiers."""

from __future__ import annotations

import re

from rag.units import MEASURES, alternation

NUM = r"\d+(?:\.\d+)?"
UNIT = alternation(MEASURES)
# "新增" (newly added) names a level, not a change.
DOWN = r"(?<!新)(?:下降|减少|降低|下滑|回落|压减|减|降)"
UP = r"(?<!新)(?:增长|增加|上升|提高|提升|上涨|增|涨)"
ADVERBS = r"同比|比上年|较上年|比去年|较去年|平均每年|平均|年均|每年|分别|累计|全年|净|了|\s"
ADVERB = rf"(?:{ADVERBS})*"
QUAL = r"左右|以上|以内|以下|上下"
# One figure and what follows it; a list of figures "7%和52%", "15.1% 、73%".
FIGURE = rf"({NUM})\s*({UNIT})?\s*({QUAL})?"
FIGURES = re.compile(rf"{FIGURE}(?:\s*(?:、|和|与|及|,)\s*{FIGURE})*")
CHANGE = re.compile(rf"({ADVERB})({DOWN}|{UP})({ADVERB})(?={NUM})")
ITEM_SPLIT = re.compile(r"\s*(?:、|和|与|及|以及)\s*")
COUNTED = re.compile(rf"({NUM})\s*(批|人次|件|起|户|人)")
CLAUSE = re.compile(r"[^,，;；:：。！？!?\n]+")
YEAR = re.compile(r"((?:19|20)\d\d)年")
# A paragraph that announces goals ("主要预期目标是:") makes the figures after it targets; so do
# a qualifier on the figure (左右, 以上) and words of intent in its clause.
TARGET_CONTEXT = re.compile(r"目标(?:任务)?(?:是|为)|预期目标\s*[:：]")
TARGET_WORDS = re.compile(r"拟|力争|计划|确保|争取")
# A sentence that states this year's goals (not 计划 alone: "1133计划" names a programme).
TARGET_SENTENCE = re.compile(r"预期目标|目标(?:任务)?(?:是|为|[:：])|今年|本年|拟|力争")
LEAD_NOISE = re.compile(
    r"^(?:(?:19|20)\d\d年(?:\d{1,2}月)?|全年|今年|去年|上年|其中|预计|实现|完成|主要|累计|共|总计|"
    r"合计|(?:全区|全市|全县|全省|全国)(?!性)|[\s、])+"
)
CJK2 = re.compile(r"[\u4e00-\u9fff]{2}")
LINKS = r"\s|达到|达|为|是|突破|超过|约|拟按|按|控制在|稳定在|保持在|实现|完成"
LEVEL_LINK = rf"(?:{LINKS})*"
LEVEL = re.compile(rf"{LEVEL_LINK}{FIGURE}(?:\s*{NUM}\s*(?:批|人次|件|起|户|人))*")
COUNTED_RUN = re.compile(rf"(?:{NUM}\s*(?:批|人次|件|起|户|人)\s*)+")
