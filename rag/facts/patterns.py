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
# A paragraph that announces goals ("主要预期目标是:") makes the figures after it targets; so do
# a qualifier on the figure (左右, 以上) and words of intent in its clause.
TARGET_CONTEXT = re.compile(r"目标(?:任务)?(?:是|为)|预期目标\s*[:：]")
TARGET_WORDS = re.compile(r"力争|确保|争取|预期|目标|控制在")
# Money or work arranged for the year (拟安排, 计划发行): a plan ("1133计划" names a programme).
PLAN_WORDS = re.compile(r"拟|安排|(?<![\d”])计划(?!单列)")
LEAD_NOISE = re.compile(
    r"^(?:(?:19|20)\d\d年(?:\d{1,2}月)?|全年|今年|去年|上年|其中|预计|实现|完成|主要|累计|共|总计|"
    r"合计|(?:全区|全市|全县|全省|全国)(?!性)|拟安排|拟发行|拟|安排|发行|提出|要|[\s、])+"
)
CJK2 = re.compile(r"[\u4e00-\u9fff]{2}")
LINKS = r"\s|达到|达|为|是|突破|超过|约|拟按|按|要|控制在|稳定在|保持在|实现|完成|在|跃上|首次"
LEVEL_LINK = rf"(?:{LINKS})*"
LEVEL = re.compile(rf"{LEVEL_LINK}{FIGURE}(?:\s*{NUM}\s*(?:批|人次|件|起|户|人))*")
# Any named figure: the words (2 to 20 characters, no figure among them), the links, the figure.
OPEN_LEVEL = re.compile(rf"([^\d,，;；:：。]{{2,20}}?){LEVEL_LINK}{FIGURE}")
COUNTED_RUN = re.compile(rf"(?:{NUM}\s*(?:批|人次|件|起|户|人)\s*)+")
