from __future__ import annotations

from pathlib import Path

import pytest

from rag.text import content_spans, guess_date, guess_region, guess_title, normalize

from .conftest import SEEDS

# Page furniture found in the seeds: none of it may reach the index.
BOILERPLATE = [
    "版權與免責聲明",
    "凡本網注明",
    "凡本網摘錄或轉載",
    "原文鏈接",
    "責編",
    "掃一掃",
    "公眾號",
    "导航菜单",
    "本文地址",
    "留言与评论",
    "验证码",
    "不代表本站立场",
    "阅读量",
    "设置为“星标”置顶",
    "不再错过精彩内容",
    "如有侵犯您的权益",
    "相关素材",
    "责任编辑",
    "免责声明",
    "监制:",
]


def test_normalize_folds_script_width_and_dashes() -> None:
    assert normalize("延吉市集體訪人次") == "延吉市集体访人次"
    assert normalize("下降５２％") == "下降52%"
    assert normalize("2015—2019") == "2015-2019"
    assert normalize("a\u3000 b") == "a b"


def test_cleaning_keeps_content_and_drops_furniture() -> None:
    text = "导航菜单\n标题\n正文第一句。正文第二句。\n责任编辑:晴天\n"
    kept = [text[s:e] for s, e in content_spans(text)]
    assert kept == ["标题", "正文第一句。正文第二句。"]


def test_footer_drops_everything_after_disclaimer_at_the_end() -> None:
    body = "正文。" * 50
    text = f"{body}\n延吉新聞網版權與免責聲明:\n凡本網注明的文字\n其他說明\n"
    kept = "".join(text[s:e] for s, e in content_spans(text))
    assert kept == body


def test_disclaimer_word_in_the_body_is_content() -> None:
    text = "免责声明的写法很重要。\n" + "正文。" * 50
    assert "免责声明的写法很重要。" in [text[s:e] for s, e in content_spans(text)]


@pytest.mark.parametrize("path", sorted(SEEDS.iterdir()), ids=lambda p: p.name)
def test_no_boilerplate_survives_cleaning_of_seeds(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    kept = "\n".join(text[s:e] for s, e in content_spans(text))
    assert [b for b in BOILERPLATE if normalize(b) in normalize(kept)] == []


def test_metadata_from_title_and_opening() -> None:
    text = "(吉林省)长春市二道区人民政府工作报告(2021年11月24日)\n二道区要做好工作。"
    title = guess_title(text)
    assert title.startswith("(吉林省)长春市二道区")
    assert guess_date(text, title) == "2021-11-24"
    assert guess_region(text, title) == "二道区"


def test_site_tag_is_stripped_from_title() -> None:
    assert guess_title("【城市發展網】延吉:創新城市治理\n正文") == "延吉:創新城市治理"


def test_national_report_region_and_year() -> None:
    text = "2019年中华人民共和国国务院政府工作报告\n\n各位代表：\n城镇新增就业1361万人。"
    title = guess_title(text)
    assert guess_date(text, title) == "2019"
    assert guess_region(text, title) == "全国"
