"""Metric functions, with hand-computed cases: each of them must be able to fail."""

from __future__ import annotations

import math

import pytest

from eval import metrics as M


def test_contains_normalizes_script_width_and_space() -> None:
    assert M.contains("同比分別下降７%和52 %", "分别下降7%和52%")
    assert not M.contains("同比下降7%", "52%")


@pytest.mark.parametrize(
    ("haystack", "needle", "found"),
    [
        ("7.5万亿", "5万亿", False),
        ("173%", "73%", False),
        ("下降73%。", "73%", True),
        ("1.86", "1.8", False),
        ("撤销73个", "73", True),
        ("2016年", "16", False),
    ],
)
def test_numbers_never_match_inside_longer_numbers(haystack: str, needle: str, found: bool) -> None:
    assert M.contains(haystack, needle) is found


def test_recall_all_vs_any_and_rank() -> None:
    passages = ["甲乙", "丙丁", "戊己"]
    assert M.all_found_within(passages, ["乙", "丁"], 2)
    assert not M.all_found_within(passages, ["乙", "己"], 2)
    assert M.any_found_within(passages, ["乙", "己"], 1)
    assert M.first_rank(passages, ["己", "丁"]) == 2
    assert M.first_rank(passages, ["庚"]) is None
    assert M.reciprocal_rank(4) == 0.25 and M.reciprocal_rank(None) == 0.0


def test_answer_accuracy_needs_every_string() -> None:
    assert M.answer_correct("城关区进京非访量下降73%", ["城关", "73%"])
    assert not M.answer_correct("城关区下降15.1%", ["城关", "73%"])


def test_answer_parts_need_every_part_in_any_form() -> None:
    parts = [["597.7万吨"], ["573.09万吨", "573.1万吨"]]
    assert M.parts_found("产量597.7万吨，去年573.1万吨", parts)
    assert not M.parts_found("产量597.7万吨", parts)
    # RGB's own matcher is a bare substring test: "3%" is found inside "2.3%"
    assert M.parts_found("增长2.3%", [["3%"]], plain=True)
    assert not M.parts_found("增长2.3%", [["3%"]])
    assert M.parts_found("B 站", [["b站", "哔哩哔哩"]], plain=True)


def test_char_f1_by_hand() -> None:
    # prediction 4 chars, gold 2 chars, 2 in common: P = 1/2, R = 1, F1 = 2/3
    assert M.char_f1("光荣公司", "光荣") == pytest.approx(2 / 3)
    assert M.char_f1("abc", "xyz") == 0.0


def test_percentiles_nearest_rank() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert M.percentile(values, 50) == 20.0
    assert M.percentile(values, 95) == 40.0
    assert math.isnan(M.percentile([], 50))
    assert M.mean([1.0, 2.0]) == 1.5


@pytest.mark.parametrize(
    ("question", "years"),
    [
        ("2019年政府工作报告提出的赤字率是多少?", {2019}),
        ("2021年至2023年的政府工作报告中哪一年最高?", {2021, 2022, 2023}),
        ("2021年国内生产总值增长了多少?", {2021, 2022}),  # a result is reported the next year
        ("哪个城市信访量下降最多?", set()),
    ],
)
def test_asked_years_for_the_wrong_period_rate(question: str, years: set[int]) -> None:
    assert M.asked_years(question) == years
