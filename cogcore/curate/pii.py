"""PII and secrets redaction: find personal data and credentials in text and replace each with a token.

Kinds, in priority order (where two finds overlap, the earlier kind wins, then the earlier and
longer span): a private key block > provider API keys and tokens > `password=`-style secrets >
credit cards (Luhn-checked) and IBANs (mod-97-checked) > emails > IP addresses (v4, v6) > phone
numbers > high-entropy strings. Each kind has its token (`[EMAIL]`, `[API_KEY]`...). The secret
detectors and the entropy rule live in `cogcore.curate.secrets`.

    from cogcore.curate.pii import PiiRedactor
    text, counts = PiiRedactor(kinds=("email", "phone")).redact("mail a@b.com")  # "[EMAIL]", {"email": 1}

As a curation step (`name = "pii_redact"`), it rewrites `doc["text"]` and the string values of
`doc["meta"]` (titles carry PII too) and records the counts of what it replaced in
`doc["meta"]["pii"]` (non-zero kinds only; `{}` for a clean document).

Phone numbers are taken in three shapes only, so that dates, versions, amounts and times stay:
`+<country> ...` with 8-15 digits, North-American `(415) 555-0132` / `415.555.0132` / `1-800-...`
(area code 2-9, separators required), and any 7-15-digit number right after `Tel:`, `Phone:`...
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from functools import partial

from cogcore.curate import secrets

ALL_KINDS = ("private_key", "api_key", "secret", "credit_card", "iban", "email", "ip", "phone", "high_entropy")
KINDS = ALL_KINDS  # the names a recipe may list
TOKENS = {kind: f"[{kind.upper()}]" for kind in ALL_KINDS}
DEFAULT_ENTROPY_THRESHOLD = 3.5  # bits per character; see cogcore.curate.secrets
# Values the pipeline itself writes into meta; they are ids and labels, not text.
_STRUCTURAL_META = frozenset({"pii", "quality", "split", "duplicate_of"})

Span = tuple[int, int]

# Patterns that run on every text open with a character (class) and put their lookbehind after it:
# the regex engine then skips straight to candidate characters, where a pattern opening with an
# assertion is tried at every position (3-5x slower). Email and IPv6 run only behind a cheap check.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.(?P<tld>[A-Za-z]{2,24})\b"
)
_NOT_TLD = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp"})  # icon@2x.png is a file name

_CARD = re.compile(
    r"\d(?<![\w.,-]\d)(?:\d{3}[ -]\d{6}[ -]\d{5}|\d{3}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?:(?P=sep)\d{4})?"
    r"(?:(?P=sep)\d{1,3})?|\d{12,18})(?![\w-]|[.,]\d)"
)
_CARD_NETWORKS = (  # (leading digits, the lengths issued), most specific first
    (("34", "37"), (15,)),  # Amex
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), (14, 15, 16)),  # Diners
    (("35",), (16, 17, 18, 19)),  # JCB
    (("4",), (13, 16, 19)),  # Visa
    (("51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27"), (16,)),  # Mastercard
    (("6011", "644", "645", "646", "647", "648", "649", "65"), (16, 17, 18, 19)),  # Discover
    (("62",), (16, 17, 18, 19)),  # UnionPay
    (("50", "56", "57", "58", "6"), tuple(range(12, 20))),
)  # Maestro
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,32}\b")
_IBAN_LENGTHS = dict(
    (entry[:2], int(entry[2:]))
    for entry in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 "
        "DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23 "
        "IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 "
        "MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 "
        "SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
    ).split()
)

_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?:/\d{1,2})?(?!\w|\.\d)")  # octets: _octets_ok
_NOT_IP_BEFORE = re.compile(  # "version 1.2.3.4", "section 2.1.4.3" are not addresses
    r"(?i)(?<![a-z])(?:version|ver\.?|v|release|build|section|sec\.|§|chapter|step|rule|item|clause|article"
    r"|oid)\s*$"
)
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?:%\w+)?(?![\w:]|\.\d)"
)

_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")  # opens with a literal: a fast scan
_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .-]?(?:\(\d{1,4}\)|\d)){7,17}(?!\w|[.,]\d)")
_NANP_REST = r"\d{3}[ .-]\d{4}"
_PHONE_NANP = re.compile(
    rf"[(1-9](?<![\w+.-][(1-9])"  # "(", the 1 of 1-800, or the area code's first digit
    rf"(?:(?<=1)[ .-]?(?:\([2-9]\d{{2}}\)[ .-]?|[2-9]\d{{2}}[ .-]){_NANP_REST}"
    rf"|(?<=\()[2-9]\d{{2}}\)[ .-]?{_NANP_REST}"
    rf"|(?<=[2-9])\d{{2}}[ .-]{_NANP_REST})(?![\w-]|[.,]\d)"
)
_PHONE_LABELLED = re.compile(  # matched on the lower-cased text
    r"(?:tel|telephone|phone|mobile|cell|fax)\b\.?(?: ?(?:no\.?|number|#))?[ \t]*:?[ \t]*"
    r"(?P<v>\(?\d[\d ().-]{5,22}\d)(?!\w|[.,]\d)"
)
_DECIMAL = re.compile(r"\.\d{6}")  # +1.4142135623731 is a number, not +1.415.555.0132
_PHONE_LABELS = ("tel", "phone", "mobile", "cell", "fax")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


class PiiRedactor:
    """Replace PII and secrets of the enabled `kinds` with `[KIND]` tokens; count them per kind."""

    name = "pii_redact"

    def __init__(self, kinds: tuple[str, ...] = ALL_KINDS, entropy_threshold: float = DEFAULT_ENTROPY_THRESHOLD):
        unknown = set(kinds) - set(ALL_KINDS)
        if unknown:
            raise ValueError(f"unknown pii kinds {sorted(unknown)}; allowed: {', '.join(ALL_KINDS)}")
        self.kinds = tuple(k for k in ALL_KINDS if k in kinds)  # priority order, whatever the input order
        self.entropy_threshold = entropy_threshold
        finders: dict[str, Callable[[str], list[Span]]] = {
            "private_key": secrets.find_private_keys,
            "api_key": secrets.find_api_keys,
            "secret": secrets.find_secret_assignments,
            "credit_card": find_cards,
            "iban": find_ibans,
            "email": find_emails,
            "ip": find_ips,
            "phone": find_phones,
            # a partial, not a lambda: the step is pickled to worker processes
            "high_entropy": partial(secrets.find_high_entropy, threshold=entropy_threshold),
        }
        self._finders = [(kind, finders[kind]) for kind in self.kinds]
        self.totals: Counter = Counter()  # over every document this step has seen

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        spans = resolve_overlaps(
            [(start, end, kind) for kind, find in self._finders for start, end in find(text) if end > start]
        )
        if not spans:
            return text, {}
        pieces, pos = [], 0
        for start, end, kind in spans:
            pieces += [text[pos:start], TOKENS[kind]]
            pos = end
        pieces.append(text[pos:])
        return "".join(pieces), dict(Counter(kind for _, _, kind in spans))

    def redact_value(self, value) -> tuple[object, dict[str, int]]:
        """`redact` over every string inside nested dicts and lists; other values pass unchanged."""
        counts: Counter = Counter()
        return self._redact_nested(value, counts), dict(counts)

    def run(self, docs: list[dict]) -> tuple[list[dict], list]:
        for doc in docs:
            counts: Counter = Counter()
            doc["text"] = self._redact_nested(doc["text"], counts)
            meta = doc.setdefault("meta", {})
            for key, value in meta.items():
                if key not in _STRUCTURAL_META:
                    meta[key] = self._redact_nested(value, counts)
            meta["pii"] = dict(counts)
            self.totals.update(counts)
        return docs, []

    def _redact_nested(self, value, counts: Counter):
        if isinstance(value, str):
            value, found = self.redact(value)
            counts.update(found)
            return value
        if isinstance(value, dict):
            return {k: self._redact_nested(v, counts) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_nested(v, counts) for v in value]
        return value


def resolve_overlaps(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Keep spans in priority order (kind, then start, then longer); drop any that overlaps a kept one."""
    rank = {kind: i for i, kind in enumerate(ALL_KINDS)}
    starts: list[int] = []
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans, key=lambda s: (rank[s[2]], s[0], -s[1])):
        i = bisect_left(starts, start)
        if (i > 0 and kept[i - 1][1] > start) or (i < len(kept) and kept[i][0] < end):
            continue
        starts.insert(i, start)
        kept.insert(i, (start, end, kind))
    return kept


def find_emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [m.span() for m in _EMAIL.finditer(text) if m.group("tld").lower() not in _NOT_TLD]


def find_cards(text: str) -> list[Span]:
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if _card_length_fits(digits) and luhn_ok(digits):
            spans.append(m.span())
    return spans


def _card_length_fits(digits: str) -> bool:
    """The lengths each network issues (Visa 13/16/19, Amex 15...), by the number's leading digits."""
    n = len(digits)
    for prefixes, lengths in _CARD_NETWORKS:
        if digits.startswith(prefixes):
            return n in lengths
    return False


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def find_ibans(text: str) -> list[Span]:
    spans = []
    for m in _IBAN.finditer(text):
        length = _IBAN_LENGTHS.get(m.group()[:2])
        raw = m.group()
        compact = raw.replace(" ", "")
        if length is None or len(compact) < length or not iban_ok(compact[:length]):
            continue
        end, seen = 0, 0  # where the length-th character sits in the spaced match
        while seen < length:
            seen += raw[end] != " "
            end += 1
        if end == len(raw) or raw[end] == " ":  # not the head of a longer code
            spans.append((m.start(), m.start() + end))
    return spans


def iban_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ips(text: str) -> list[Span]:
    spans = [
        m.span()
        for m in _IPV4.finditer(text)
        if _octets_ok(m.group()) and not _NOT_IP_BEFORE.search(text, max(0, m.start() - 16), m.start())
    ]
    if _IPV6_HINT.search(text):
        spans += [m.span() for m in _IPV6.finditer(text) if _is_ipv6(m.group())]
    return spans


def _octets_ok(address: str) -> bool:
    octets = address.split("/")[0].split(".")
    # Loopback and "this network" identify no one; 0.48.3.1 and 7.3.4.2 are versions and sections.
    if octets[0] in ("0", "127") or all(len(o) == 1 for o in octets):
        return False
    return all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets)


def _is_ipv6(candidate: str) -> bool:
    address = candidate.split("%")[0]
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    # "::1", numpy's "1::2" and C++'s "a::b" are valid addresses too: ask for a digit and three
    # groups, or two with one of 3+ characters ("fe80::1").
    groups = [g for g in address.split(":") if g]
    long_enough = len(groups) >= 3 or (len(groups) == 2 and max(map(len, groups)) >= 3)
    return long_enough and any(c.isdigit() for c in address)


def find_phones(text: str) -> list[Span]:
    spans = [
        m.span()
        for m in _PHONE_INTL.finditer(text)
        if 8 <= _digit_count(m.group()) <= 15 and not _DECIMAL.search(m.group())
    ]
    spans += [m.span() for m in _PHONE_NANP.finditer(text)]
    lower = text.lower()
    if len(lower) != len(text) or not any(label in lower for label in _PHONE_LABELS):
        return spans
    for m in _PHONE_LABELLED.finditer(lower):
        if m.start() > 0 and lower[m.start() - 1].isalnum():  # "hotel", "excel"
            continue
        value = m.group("v")
        if 7 <= _digit_count(value) <= 15 and not _DATE_LIKE.fullmatch(value.strip("() ")):
            spans.append(m.span("v"))
    return spans


def _digit_count(s: str) -> int:
    return sum(c.isdigit() for c in s)
