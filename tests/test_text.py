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


# News as the CRUD corpus has it: a whole article on one line, a header before ``正文：`` and a
# portal's footer glued to the last sentence.
ONE_LINE_NEWS = [
    "2023-08-16 11:10:02，正文：",
    "记者：韩轩，正文：",
    "[ 2023-07-20 08：29 ] ，正文：",
    "来源：央视网  |  2023年07月20日 10:30:31，正文：",
    "，正文：",
]


@pytest.mark.parametrize("header", ONE_LINE_NEWS)
def test_one_line_article_keeps_its_text_and_loses_header_and_footer(header: str) -> None:
    article = "鄂州新庙派出所打掉一个赌博窝点，抓获29人。8月5日民警获得线索。现场查获赌资3万元。"
    text = f"{header}{article}END来源：鄂州公安尊重原创，如有侵权请联系处理返回搜狐，查看更多责任编辑："
    kept = "".join(text[s:e] for s, e in content_spans(text))
    assert kept == article


def test_footer_at_the_start_of_a_web_passage_drops_only_the_footer() -> None:
    text = "© 2023 RFI – 版权所有版权所有。  习近平将访问泰国并参加APEC峰会。2022年APEC峰会定于11月18日举行。"
    kept = " ".join(text[s:e] for s, e in content_spans(text))
    assert kept == "习近平将访问泰国并参加APEC峰会。2022年APEC峰会定于11月18日举行。"


def test_a_long_sentence_about_copyright_is_content() -> None:
    sentence = (
        "法院认定，" + "该公司对其作品享有版权所有者的全部权利并据此要求赔偿，" * 6 + "判决生效。"
    )
    assert [sentence] == [sentence[s:e] for s, e in content_spans(sentence)]


def test_chunks_never_cross_a_removed_footer() -> None:
    from rag.chunking import chunk_document

    text = "第一段内容很长。" * 10 + "  责任编辑：王五  " + "第二段内容也很长。" * 10
    chunks = chunk_document("d", text, target_chars=2000, max_chars=2000)
    assert [c.text.count("责任编辑") for c in chunks] == [0, 0]
