"""Secret detectors for PII redaction: private keys, provider tokens, password assignments, entropy.

Each `find_*` function returns the `(start, end)` character spans to redact in a text; the
redactor in `cogcore.curate.pii` resolves overlaps between kinds and writes the tokens. Every
pattern is compiled once at import; the provider patterns run only on texts that contain their
literal marker (`ghp_`, `AKIA`...), so a clean document costs a few substring searches.

High-entropy strings. A candidate is a run of 20 or more characters from the base64 / base64url
alphabet (`A-Za-z0-9+/_-`, optional `=` padding). Paths and URLs are split at `/` first (unless
the run carries `+` or `=`, which paths do not), so `src/cogcore/curate` is three short pieces, not
one long run. A candidate is redacted when:
  - it has at least one digit and one letter (words, CamelCase and snake_case identifiers mostly
    have none: random 20-character base64 lacks a digit only 3% of the time);
  - its Shannon entropy is at least `threshold` bits per character (default 3.5: the first
    percentile of random 20-character base64; a 20-character string cannot exceed log2(20)=4.32);
    hex-only runs (sha1, md5, hex keys) need 32+ characters and `threshold - 0.5` bits, since the
    hex alphabet tops out at 4 bits;
  - it does not read as words: fewer than half of its adjacent letter pairs are common English
    bigrams (random base64 scores ~0.27, identifiers like `HGNetV2ConvLayerLight` 0.5 or more);
  - it is not a UUID and not separator-dense (more than 1 in 10 characters `-` or `_`, as in
    `cp311-manylinux_2_17_x86_64`).
Measured (threshold 3.5): recall 88-90% on random 20-character base64 / alphanumeric tokens,
96-98% at 32, 99-100% at 64. On 57k distinct 20+-character runs from Python sources and READMEs,
266 were flagged: 214 hex hashes (commit SHAs, sha256 digests), the rest base64 blobs, random ids
(Google Docs, YouTube) and two alphabet strings; no identifier, word or path. Git SHAs and other
hex digests are thus redacted (they cannot be told from hex keys), except right after `/blob/`,
`/tree/` or `/commit/` in a URL.
"""

from __future__ import annotations

import math
import re
from collections import Counter

Span = tuple[int, int]

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:\s*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+: [^\n]*))*)"
)  # truncated: base64 lines, header lines

# Provider formats, each behind the literal marker it must contain. The AWS secret has no prefix;
# it is taken only next to a name that says what it is, and only its value (group "v").
_AWS_IDS = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA")
_API_KEYS = [
    (markers, re.compile(pattern))
    for markers, pattern in [
        (_AWS_IDS, rf"(?<![A-Z0-9])(?:{'|'.join(_AWS_IDS)})[A-Z0-9]{{16}}(?![A-Z0-9])"),
        (
            ("secret", "SECRET", "Secret"),
            r"(?i:aws)[\w .-]{0,20}?(?i:secret)[\w .-]{0,20}?[\"']?\s*[:=]\s*[\"']?"
            r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        ),
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b"),
        (("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
        (("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,250}"),
        (("xapp-",), r"\bxapp-\d-[A-Za-z0-9-]{10,250}"),
        (("hooks.slack.com",), r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        (("_live_", "_test_"), r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,247}\b"),
        (("whsec_",), r"\bwhsec_[A-Za-z0-9]{24,}\b"),
        (("AIza",), r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
        (
            ("sk-",),
            r"\bsk-ant-[A-Za-z0-9_-]{20,}|\bsk-(?:proj-|svcacct-|admin-)?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}",
        ),
        (("eyJ",), r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
        (("hf_",), r"\bhf_[A-Za-z0-9]{30,}\b"),
        (("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}"),
        (("npm_",), r"\bnpm_[A-Za-z0-9]{36}\b"),
        (("SG.",), r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
    ]
]

# `password=...`, `"api_key": "..."`, `DB_PASSWORD: ...`: the key may carry a prefix (`db_`), the
# value (group "v") is what gets redacted. Also bearer/basic credentials and passwords in URLs.
# Matched on the lower-cased text (a case-sensitive literal alternation is ~4x faster than (?i)).
_KEYWORDS = (
    r"password|passwd|passphrase|pwd|secret|secret[_-]?key|client[_-]?secret|api[_-]?key|apikey"
    r"|access[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key|token"
)
_ASSIGNMENT = re.compile(
    rf"(?:(?P<key>{_KEYWORDS})[\"']?[ \t]*(?P<op>:=|=>|[:=])[ \t]*"
    rf"|(?P<auth>authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:bearer|basic|token)[ \t]+|bearer[ \t]+))"
    # the value: quoted, or a run that a `&` ends only before `name=` (URL query strings)
    r"(?P<v>\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|(?:[^\s\"'`,;&(){}\[\]]|&(?!\w+=)){1,200})"
)
_ASSIGNMENT_ANY_CASE = re.compile(_ASSIGNMENT.pattern, re.IGNORECASE)
_ASSIGNMENT_MARKERS = ("pass", "pwd", "secret", "key", "token", "bearer")
_URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?P<v>[^/\s@]{1,200})@")
# Values that stand for a secret without being one: masks, templates, type names, variable names.
_PLACEHOLDER = re.compile(
    r"(?i)\*+|x+|\[\w+\]|none|null|nil|true|false|undefined|empty|required|optional|missing|redacted|changeme"
    r"|example|bool|boolean|int|integer|float|number|str|string|bytes|dict|list|any|object|your[\w-]*"
    r"|[a-z_-]*(?:key|token|secret|password)[a-z_-]*"
)
_TEMPLATE = re.compile(r"\.\.\.|…|<[^>]*>|\{[^}]*\}|\$\{|%\(")
_IDENTIFIER = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]\w*)*")
_KEY_PREFIX = re.compile(r"[ \t>*#-]*[\"']?[\w.-]*")  # indent, bullet, quote, `db_`
_PASSWORD_KEYS = {"password", "passwd", "passphrase", "pwd"}

_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
_GIT_REFS = frozenset({"blob", "tree", "commit", "commits", "raw", "blame"})
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LETTER_RUNS = re.compile(r"[A-Za-z]{2,}")
# The English letter pairs that make up 90% of pairs in English prose (measured on README text).
_COMMON_BIGRAMS = frozenset(
    "ab ac ad ag ai al am an ap ar as at au av ba be bi bl bo ca ce ch ci ck cl co cr ct cu da de di do "
    "ea ec ed ee ef el em en ep er es et ev ex fa fe fi fo fr ge gi gr gu ha he hi hm ho ht hu ia ic id "
    "ie if ig il im in io ir is it iv ke ks la le li ll lo ls lt lu ly ma me mi mm mo mp mu na nc nd ne "
    "ng ni no ns nt oc od of og ol om on oo op or os ot ou ov ow pa pe pl po pr ps pt pu qu ra rd re rg "
    "ri rk rm ro rr rs rt ru ry sa sc se sh si sk so sp ss st su ta te th ti to tp tr ts tt tu ty ua ub "
    "uc ue ul um un up ur us ut va ve vi we wh wi xi yo".split()
)


def find_private_keys(text: str) -> list[Span]:
    if "PRIVATE KEY" not in text:
        return []
    return [m.span() for m in _PRIVATE_KEY.finditer(text)]


def find_api_keys(text: str) -> list[Span]:
    spans = []
    for markers, pattern in _API_KEYS:
        if any(marker in text for marker in markers):
            spans += [m.span("v") if "v" in pattern.groupindex else m.span() for m in pattern.finditer(text)]
    return spans


def find_secret_assignments(text: str) -> list[Span]:
    spans = (
        [m.span("v") for m in _URL_PASSWORD.finditer(text) if _plausible_value("password", m.group("v"))]
        if "://" in text
        else []
    )
    lower = text.lower()
    if not any(marker in lower for marker in _ASSIGNMENT_MARKERS):
        return spans
    # str.lower() keeps offsets unless a character lower-cases to two (Turkish dotted I).
    matches = _ASSIGNMENT.finditer(lower) if len(lower) == len(text) else _ASSIGNMENT_ANY_CASE.finditer(text)
    for m in matches:
        if m.start() > 0 and text[m.start() - 1].isalnum():  # "mypassword", "nontoken"
            continue
        start, end = m.span("v")
        value = text[start:end]
        if value[0] in "\"'" and len(value) > 1:
            start, end, value = start + 1, end - 1, value[1:-1]
        elif m.group("auth"):
            if len(value) < 16 or _IDENTIFIER.fullmatch(value):  # "bearer bonds", not a token
                continue
        elif not _plausible_unquoted(m, text, value):
            continue
        if _plausible_value(m.group("key"), value.strip()):
            spans.append((start, end))
    return spans


def _plausible_value(key: str | None, value: str) -> bool:
    if len(value) < 4 or _PLACEHOLDER.fullmatch(value) or _TEMPLATE.search(value):
        return False
    if key and key.lower() in _PASSWORD_KEYS:
        return True  # passwords may be short, spaced or numeric
    # A token or key is one opaque word: `BOS_TOKEN = "<s>"`, `"--token": "Use a User Access..."` are not.
    return len(value) >= 8 and not any(c.isspace() for c in value) and not value.isdigit()


def _plausible_unquoted(m: re.Match, text: str, value: str) -> bool:
    """Unquoted values after a key name: tell a secret from prose (`Password: follow the steps`)
    and from code (`api_key=api_key`, `token = tokens[i]`, `max_token=2048`)."""
    end = m.end("v")
    if end < len(text) and text[end] in "([":
        return False
    if not _IDENTIFIER.fullmatch(value):
        return True
    # A bare word (`api_key=api_key`, `secret: the`) is taken only as a config line: YAML
    # (`password: sunshine`) or an env file (`DB_PASSWORD=sunshine`); an attribute never.
    yaml_or_env = m.group("op") == ":" or text[m.start("key") : m.end("key")].isupper()
    return "." not in value and yaml_or_env and _alone_on_line(m, text)


def _alone_on_line(m: re.Match, text: str) -> bool:
    """`password: hunter` as a config line: only a key prefix before it, nothing after the value."""
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    before = text[line_start : m.start()]
    after = text[m.end() :] if line_end < 0 else text[m.end() : line_end]
    return _KEY_PREFIX.fullmatch(before) is not None and not after.strip()


def find_high_entropy(text: str, threshold: float) -> list[Span]:
    spans = []
    for m in _CANDIDATE.finditer(text):
        token = m.group()
        if "+" in token or token.endswith("=") or "/" not in token:
            if is_high_entropy(token.rstrip("="), threshold):
                spans.append(m.span())
            continue
        pos, previous = m.start(), ""
        for piece in token.split("/"):
            # A commit in a repository URL (.../blob/<sha>/...) is a public reference, not a secret.
            if len(piece) >= 20 and previous not in _GIT_REFS and is_high_entropy(piece, threshold):
                spans.append((pos, pos + len(piece)))
            pos += len(piece) + 1
            previous = piece
    return spans


def is_high_entropy(token: str, threshold: float) -> bool:
    """The rules in the module docstring; `token` is one candidate run without padding."""
    if _UUID.fullmatch(token):
        return False
    if not any(c.isdigit() for c in token) or not any(c.isalpha() for c in token):
        return False
    if _HEX.fullmatch(token):
        return len(token) >= 32 and shannon_entropy(token) >= threshold - 0.5
    if (token.count("-") + token.count("_")) * 10 > len(token):
        return False
    return shannon_entropy(token) >= threshold and _english_bigram_share(token) < 0.5


def shannon_entropy(token: str) -> float:
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def _english_bigram_share(token: str) -> float:
    total = common = 0
    for run in _LETTER_RUNS.findall(token):
        run = run.lower()
        for a, b in zip(run, run[1:]):
            total += 1
            common += a + b in _COMMON_BIGRAMS
    return common / total if total else 0.0
