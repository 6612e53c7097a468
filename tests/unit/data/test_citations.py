import pytest

from seektune.data.citations import Citation, chinese_number, citations


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
