"""Find personal data and replace each value with a stable keyed pseudonym.

Pseudonym = HMAC-SHA256(secret, kind + canonical value), so the same phone number maps to the same token in
every file processed with the same secret, and nobody without the secret can test a guess (a plain hash of
an 11-digit phone number is reversed by enumerating 10^10 numbers; that is why MD5/SHA without a key is
not acceptable). Raw values are never written to any report.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from seektune.errors import ConfigError

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

_ID = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
                 r"(?![0-9A-Za-z])")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)"      # Chinese mobile
    r"|(?<![\d+])0\d{2,3}-\d{7,8}(?!\d)"                                      # Chinese landline with area code
    r"|(?<![\d+])\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){2,3}(?!\d)"  # international
)


def valid_resident_id(number: str) -> bool:
    """GB 11643-1999: 17 digits, a real birth date, and the ISO 7064 MOD 11-2 check character."""
    number = number.upper()
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS))
    return ID_CHECK[total % 11] == number[17]


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass
class Finding:
    kind: str
    pseudonym: str
    where: str
    field: str


@dataclass
class Pseudonymiser:
    secret: bytes
    id_fields: tuple[str, ...] = ()
    counts: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError("privacy secret: use at least 16 characters (it keys the pseudonyms; keep it private "
                              "and reuse it so the same person maps to the same pseudonym across files)")

    @property
    def fingerprint(self) -> str:
        """Tells whether two runs used the same secret without revealing it."""
        return hmac.new(self.secret, b"seektune-secret-fingerprint", hashlib.sha256).hexdigest()[:12]

    def pseudonym(self, kind: str, canonical: str) -> str:
        digest = hmac.new(self.secret, f"{kind}:{canonical}".encode("utf-8"), hashlib.sha256).hexdigest()
        return f"<{kind.upper()}_{digest[:12]}>"

    def _note(self, kind: str, token: str, where: str, field_name: str) -> str:
        self.counts[kind] += 1
        self.findings.append(Finding(kind, token, where, field_name))
        return token

    def text(self, text: str, where: str = "", field_name: str = "") -> str:
        """Replace resident IDs, e-mails, bank cards (Luhn) and phone numbers, in that order (most specific first)."""
        def ident(m: re.Match) -> str:
            value = m.group(0).upper()
            if not valid_resident_id(value):
                return m.group(0)
            return self._note("id_number", self.pseudonym("id_number", value), where, field_name)

        def email(m: re.Match) -> str:
            return self._note("email", self.pseudonym("email", m.group(0).lower()), where, field_name)

        def card(m: re.Match) -> str:
            digits = re.sub(r"\D", "", m.group(0))
            if not luhn_valid(digits) or _PHONE.fullmatch(m.group(0)):
                return m.group(0)
            return self._note("bank_card", self.pseudonym("bank_card", digits), where, field_name)

        def phone(m: re.Match) -> str:
            digits = re.sub(r"\D", "", m.group(0))
            digits = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
            digits = digits[4:] if digits.startswith("0086") else digits
            return self._note("phone", self.pseudonym("phone", digits), where, field_name)

        text = _ID.sub(ident, text)
        text = _EMAIL.sub(email, text)
        text = _CARD.sub(card, text)
        return _PHONE.sub(phone, text)

    def fields(self, record: dict, where: str) -> dict:
        """Pseudonymise the configured user-id fields (dotted paths such as metadata.user_id) whole."""
        for path in self.id_fields:
            parent, key = _walk(record, path)
            if parent is not None and key in parent and parent[key] not in (None, ""):
                parent[key] = self._note("user_id", self.pseudonym("user_id", str(parent[key])), where, path)
        return record


def _walk(record: dict, dotted: str) -> tuple[dict | None, str]:
    parts = dotted.split(".")
    node = record
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None, parts[-1]
    return (node if isinstance(node, dict) else None), parts[-1]
