from __future__ import annotations

from rag.citations import check_sentences, numbers_in, renumber, resolve
from rag.schemas import Passage


def passage(n: int, text: str, doc: str = "d") -> Passage:
    return Passage(
        n=n,
        doc_id=doc,
        source=f"{doc}.txt",
        title=doc,
        start=10 * n,
        end=10 * n + len(text),
        text=text,
        score=1.0,
    )


P = [
    passage(1, "2016年,集體訪442批2179人次,同比分別下降7%和52%。", "yanji"),
    passage(2, "信访总量、进京非访量分别同比下降15.1%、73%。", "lanzhou"),
]


def test_numbers_keep_their_units_and_fold_width() -> None:
    assert numbers_in("下降５２％,增长10.5%,660.5亿元,2179人次[1]") == [
        "52%",
        "10.5%",
        "660.5亿元",
        "2179人次",
    ]


def test_invalid_markers_dropped_and_rest_renumbered_by_first_use() -> None:
    text, order = renumber("甲[2]。乙[7]。丙[1][2]。丁【1、2】", 2)
    assert text == "甲[1]。乙。丙[2][1]。丁[2][1]"
    assert order == [2, 1]


def test_sentence_verified_only_when_its_numbers_are_in_cited_passages() -> None:
    ok, wrong, uncited = check_sentences(
        "人次下降52%[1]。进京非访下降37%[2]。总量下降15.1%。", {1: P[0], 2: P[1]}
    )
    assert ok.verified and ok.markers == (1,)
    assert not wrong.verified  # 37% is in no cited passage
    assert not uncited.verified  # a figure with no citation is not verified


def test_number_inside_a_longer_number_does_not_count() -> None:
    (s,) = check_sentences("下降5%[1]。", {1: passage(1, "下降15%。")})
    assert not s.verified


def test_resolve_builds_citations_with_quotes_and_flags() -> None:
    answer, citations = resolve("城关区进京非访量下降73%[2],延吉人次下降52%[1]。[9]", P)
    assert answer == "城关区进京非访量下降73%[1],延吉人次下降52%[2]。"
    assert [(c.marker, c.doc_id, c.verified) for c in citations] == [
        (1, "lanzhou", True),
        (2, "yanji", True),
    ]
    assert citations[0].quote == P[1].text and citations[0].start == P[1].start


def test_missing_markers_are_attached_from_the_passage_holding_the_numbers() -> None:
    answer, citations = resolve("进京非访量下降73%。", P)
    assert answer == "进京非访量下降73%[1]。"
    assert citations[0].doc_id == "lanzhou" and citations[0].verified


def test_numbers_from_the_question_are_not_claims() -> None:
    answer, citations = resolve(
        "2016年人次下降52%[1]。", [passage(1, "人次下降52%。")], question="2016年下降了多少?"
    )
    assert answer == "2016年人次下降52%[1]。"
    assert citations[0].verified


def test_unverified_sentences_can_be_removed() -> None:
    answer, citations = resolve("人次下降52%[1]。总量下降99%[2]。", P, remove_unverified=True)
    assert answer == "人次下降52%[1]。"
    assert [c.doc_id for c in citations] == ["yanji"]


def test_a_figure_must_come_from_a_passage_about_the_place_it_is_said_of() -> None:
    """81.4% is in the cited passage, but the passage is about 龙港: a sentence saying it of
    二道区 is not verified (and is removed when unverified sentences are)."""
    from rag.excerpts import about_sentence

    longgang = passage(1, "龙港市城市公园绿地服务半径覆盖率达81.4%。", "longgang").model_copy(
        update={"title": "龙港市改革报告", "region": "龙港"}
    )
    wrong = "长春二道区幸福社区覆盖率目标为81.4%[1]。"
    _, cited = resolve(wrong, [longgang], about=about_sentence)
    assert not cited[0].verified
    text, _ = resolve(wrong, [longgang], remove_unverified=True, about=about_sentence)
    assert "81.4%" not in text
    _, cited = resolve("龙港的覆盖率达81.4%[1]。", [longgang], about=about_sentence)
    assert cited[0].verified


def test_a_year_label_is_supported_by_the_cited_documents_date() -> None:
    p = passage(1, "今年赤字率拟按2.8%安排。", "2019").model_copy(update={"date": "2019"})
    _, cited = resolve("2019年政府工作报告:今年赤字率拟按2.8%安排[1]。", [p])
    assert cited[0].verified
    _, cited = resolve("2020年:赤字率2.8%[1]。", [p])
    assert not cited[0].verified
