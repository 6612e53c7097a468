import json

import pytest

from seektune.cli import main
from seektune.data.pipeline.privacy import Pseudonymiser, luhn_valid, valid_resident_id
from seektune.errors import ConfigError

SECRET = b"a-test-secret-of-enough-length"
VALID_ID = "11010519491231002X"   # the GB 11643 worked example
VALID_CARD = "4111111111111111"    # Luhn-valid test card


def test_resident_id_checksum_accepts_valid_and_rejects_invalid():
    assert valid_resident_id(VALID_ID)
    assert valid_resident_id(VALID_ID.lower())
    assert not valid_resident_id("110105194912310021")   # wrong check character
    assert not valid_resident_id("110105194902300028")   # 30 February
    assert not valid_resident_id("11010519491231002")    # 17 characters


def test_luhn():
    assert luhn_valid(VALID_CARD)
    assert luhn_valid("5500000000000004") and luhn_valid("6011111111111117")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("411111")


def test_every_kind_is_replaced_with_a_keyed_stable_pseudonym():
    masker = Pseudonymiser(SECRET)
    text = (f"电话 13812345678，邮箱 Zhang.San@Example.com，身份证 {VALID_ID}，卡号 4111 1111 1111 1111，"
            "座机 010-62345678。")
    out = masker.text(text)
    for raw in ("13812345678", "Zhang.San", VALID_ID, "4111", "62345678"):
        assert raw not in out
    assert dict(masker.counts) == {"phone": 2, "email": 1, "id_number": 1, "bank_card": 1}
    # the same value in another spelling maps to the same pseudonym; another secret maps elsewhere
    again = masker.text("call +86 138-1234-5678 or zhang.san@example.com")
    assert masker.pseudonym("phone", "13812345678") in out and masker.pseudonym("phone", "13812345678") in again
    assert masker.pseudonym("email", "zhang.san@example.com") in again
    other = Pseudonymiser(b"another-secret-of-enough-length")
    assert other.pseudonym("phone", "13812345678") != masker.pseudonym("phone", "13812345678")


def test_invalid_numbers_are_left_alone():
    masker = Pseudonymiser(SECRET)
    text = "订单号 110105194912310021，流水 4111111111111112，版本 2024"
    assert masker.text(text) == text
    assert not masker.counts


def test_short_secret_is_refused():
    with pytest.raises(ConfigError, match="16 characters"):
        Pseudonymiser(b"short")


def test_cli_same_phone_same_pseudonym_across_files_and_no_raw_values_in_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEKTUNE_PRIVACY_SECRET", SECRET.decode())
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"instruction": "我的电话是13812345678", "output": "好的", "user_id": "u-981"},
                            ensure_ascii=False) + "\n", encoding="utf-8")
    b.write_text(json.dumps({"text": "回拨 138 1234 5678", "metadata": {"user_id": "u-981"}},
                            ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["data", "privacy", str(a), "-o", str(tmp_path / "a.out.jsonl"), "--id-field", "user_id"]) == 0
    assert main(["data", "privacy", str(b), "-o", str(tmp_path / "b.out.jsonl"),
                 "--id-field", "metadata.user_id"]) == 0
    ra = json.loads((tmp_path / "a.out.jsonl").read_text(encoding="utf-8"))
    rb = json.loads((tmp_path / "b.out.jsonl").read_text(encoding="utf-8"))
    token = Pseudonymiser(SECRET).pseudonym("phone", "13812345678")
    assert token in ra["instruction"] and token in rb["text"]
    assert ra["user_id"] == rb["metadata"]["user_id"] != "u-981"
    for name in ("a.out.jsonl.privacy.jsonl", "a.out.jsonl.manifest.json", "b.out.jsonl.manifest.json"):
        written = (tmp_path / name).read_text(encoding="utf-8")
        assert "13812345678" not in written and "u-981" not in written and SECRET.decode() not in written
    manifest = json.loads((tmp_path / "a.out.jsonl.manifest.json").read_text())
    assert manifest["steps"][-1]["replaced"] == {"phone": 1, "user_id": 1}
