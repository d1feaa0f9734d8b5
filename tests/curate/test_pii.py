"""PII and secrets redaction: every kind planted in realistic variants is replaced and none of the
planted values survives anywhere; look-alikes (Luhn/mod-97 failures, dates, versions, amounts,
words, URLs, paths) are left alone; per-kind switches, exact counts, overlaps, the step."""

import copy
import pickle

import pytest

from cogcore.curate.pii import ALL_KINDS, KINDS, TOKENS, PiiRedactor, iban_ok, luhn_ok
from cogcore.curate.secrets import is_high_entropy, shannon_entropy

# kind -> (planted values, the text they sit in); "{}" marks where each value goes.
PLANTED = {
    "email": (
        ["jane.doe@example.com", "j.smith+billing@mail.acme-corp.co.uk", "ADMIN@EXAMPLE.ORG", "user_123@sub.domain.io"],
        "Write to {} or {}; escalations go to {} (cc {}).",
    ),
    "phone": (
        [
            "+1 (415) 555-0132",
            "(212) 555-0199",
            "415.555.0133",
            "1-800-555-0175",
            "+44 20 7946 0958",
            "+33 1 23 45 67 89",
            "+91-98765-43210",
            "+14155550100",
            "030 1234567",
        ],
        "Call {}, {}, {} or {}. London: {}; Paris {}; Delhi {}; SMS {}. Tel: {}.",
    ),
    "ip": (
        [
            "192.168.1.10",
            "10.0.0.255",
            "8.8.4.14",
            "2001:db8:85a3::8a2e:370:7334",
            "fe80::1ff:fe23:4567:890a",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "::ffff:192.0.2.128",
        ],
        "Hosts {}, {} and DNS {}. IPv6 {}, link-local {}, full {}, mapped {}.",
    ),
    "credit_card": (
        ["4111 1111 1111 1111", "5500-0000-0000-0004", "3782 822463 10005", "6011111111111117", "4222222222222"],
        "Visa {}, Mastercard {}, Amex {}, Discover {}, old Visa {}.",
    ),
    "iban": (
        [
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
        ],
        "Pay to IBAN {} or {}; French account {}, Dutch {}.",
    ),
    "api_key": (
        [
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "ghp_R8fQm2Lx7Tb4Wk8Np3Vd6Hs1Zy5Jc0Ga9Ue2",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_51H8abcDEFghiJKLmnoPQR",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            "sk-proj-Xk2Lm9Qr4Tv7Wy1Zb3Nd6Fh8Jp0Rs5Ua",
            "sk-ant-api03-Zq8Xw7Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg9Fe8Dc7Ba6Zy5Xw4Vu3Ts2Rq1Po0Nm-AbCdEfAA",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ],
        "export AWS_ACCESS_KEY_ID={}\naws_secret_access_key = {}\n"
        "GITHUB_TOKEN={} (oauth {}, fine-grained {})"
        "\nslack: {}\nstripe: {} restricted {}\nmaps key {}\nOPENAI_API_KEY={}\nclaude {}\nAuthorization: {}",
    ),
    "private_key": (
        [
            "-----BEGIN RSA PRIVATE KEY-----\n"
            "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi2t5Xh0aB1c2D3e4F5g6H7i8J9\n"
            "k0L1m2N3o4P5q6R7s8T9u0V1w2X3y4Z5a6B7c8D9e0F1g2H3i4J5k6L7m8N9o0P1\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
            "QyNTUxOQAAACDx3vQp7k9Lm2Rt8Yw4Zq1Xc6Vb0Nn5Jh3Gf7Ds2Aa9Sd4Fg8Hj1Kl6==\n"
            "-----END OPENSSH PRIVATE KEY-----",
        ],
        "deploy key:\n{}\nand the host key\n{}\n",
    ),
    "secret": (
        [
            "hunter2",
            "s3cr3t-Pa55",
            "abcd1234efgh5678",
            "Tr0ub4dor&3",
            "sunshine",
            "S3cretPass",
            "abcdef0123456789abcdef01",
        ],
        'password={} and DB_PASSWORD="{}"\n{{"api_key": "{}"}}\nsecret: {} today\n  password: {}\n'
        "postgres://admin:{}@db.internal:5432/app\nAuthorization: Bearer {}\n",
    ),
    "high_entropy": (
        [
            "Zx9Qm2Lr7Tb4Wk8Np3Vd6Hs1",
            "dGhpcyBpcyBhIHNlY3JldCB2YWx1ZSAxMjM0NTY3ODk=",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ],
        "session {} then blob {} and digest {}.",
    ),
}

NEGATIVES = [
    "4111 1111 1111 1112",
    "4111111111111112",  # Luhn fails
    "DE89 3704 0044 0532 0130 01",
    "GB82WEST12345698765431",  # mod-97 fails
    "2024-01-15",
    "15.01.2024",
    "01/15/2024",
    "2024-01-15T10:30:00Z",  # dates
    "1.2.3",
    "v2.10.4",
    "version 1.2.3.4",
    "Python 3.11.7",
    "section 2.1.4.3",  # versions, numbering
    "$1,250.00",
    "€1.234.567,89",
    "1,000,000",
    "USD 12,500",  # amounts
    "10:30",
    "23:59:59",
    "12:30:45",
    "42",
    "7 days",
    "ext. 204",  # times, short numbers
    "internationalization",
    "counterrevolutionaries",
    "antidisestablishmentarianism",
    "https://docs.python.org/3/library/re.html#re.compile",
    "https://github.com/huggingface/datatrove/blob/main/src/datatrove/pipeline/formatters/pii.py",
    "refs/heads/feature/add-pii-redaction",
    "src/cogcore/curate/pipeline.py",
    "/usr/local/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
    "test_pii_redactor_handles_overlapping_spans",
    "getElementById",
    "MAX_CONCURRENT_REQUESTS_PER_HOST",
    "ISBN 978-3-16-148410-0",
    "550e8400-e29b-41d4-a716-446655440000",
    "00:1A:2B:3C:4D:5E",
    "std::vector",
    "Password: follow the reset steps below.",
    "max_token=2048",
    "api_key=api_key",
    "token = tokens[i]",
    "icon@2x.png",
    "the bearer of this card",
    # seen in real code: numpy slices, versions, section numbers, floats, tokenizer tokens, placeholders
    "x[1::2]",
    "Inkscape 0.48.3.1",
    "PDF reference 7.3.4.2",
    "+1.4142135623731",
    'BOS_TOKEN = "<s>"',
    'VISION_END_TOKEN = "]<]end of image[>["',
    'api_key="your-replicate-api-key"',
    'api_key="hf_..."',
    "require_hf_token: bool",
    'f"s3://{access_key}:{secret_key}@bucket"',
]


def plant(kind: str) -> tuple[list[str], str]:
    values, template = PLANTED[kind]
    return values, template.format(*values)


def assert_no_leak(values: list[str], output: str) -> None:
    leaked = [v for v in values if v in output]
    assert not leaked, f"leaked {leaked} in {output!r}"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_planted_value_is_redacted_with_its_token(kind):
    values, text = plant(kind)
    out, counts = PiiRedactor().redact(text)
    assert_no_leak(values, out)
    assert counts == {kind: len(values)}
    assert out.count(TOKENS[kind]) == len(values)


def test_kinds_and_tokens():
    assert KINDS == ALL_KINDS and len(set(ALL_KINDS)) == 9
    assert TOKENS["email"] == "[EMAIL]" and TOKENS["high_entropy"] == "[HIGH_ENTROPY]"
    with pytest.raises(ValueError, match="unknown pii kinds.*allowed: private_key"):
        PiiRedactor(kinds=("email", "ssn"))


@pytest.mark.parametrize("negative", NEGATIVES)
def test_look_alikes_are_left_alone(negative):
    text = f"Note: {negative} is fine."
    assert PiiRedactor().redact(text) == (text, {})


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")


def test_everything_at_once_no_leaks_and_exact_counts():
    parts, values, expected = [], [], {}
    for kind in ALL_KINDS:
        v, text = plant(kind)
        parts.append(text)
        values += v
        expected[kind] = len(v)
    parts += NEGATIVES
    text = "\n\n".join(parts)
    out, counts = PiiRedactor().redact(text)
    assert_no_leak(values, out)
    assert counts == expected
    for negative in NEGATIVES:
        assert negative in out


@pytest.mark.parametrize("off", ALL_KINDS)
def test_switching_a_kind_off_leaves_it(off):
    on = tuple(k for k in ALL_KINDS if k != off)
    redactor = PiiRedactor(kinds=on)
    _, text = plant(off)
    out, counts = redactor.redact(text)
    assert TOKENS[off] not in out and off not in counts
    if off in ("email", "phone", "ip", "credit_card", "iban"):
        assert (out, counts) == (text, {})  # nothing else claims these values
    # (Secrets switched off may still be caught by a broader kind: an API key as a high-entropy string.)
    for kind in on:
        values, text = plant(kind)
        out, counts = redactor.redact(text)
        assert_no_leak(values, out)
        assert counts == {kind: len(values)}


def test_switched_off_card_does_not_fall_to_a_lower_kind():
    # With cards off, the digits are not re-found as a phone or a high-entropy string.
    text = "Visa 4111 1111 1111 1111 and 4111111111111111."
    assert PiiRedactor(kinds=("email", "phone", "ip", "high_entropy")).redact(text) == (text, {})


def test_overlaps_resolve_by_priority():
    r = PiiRedactor()
    # A provider key assigned to api_key= is one API key, not also a generic secret.
    assert r.redact('api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"') == ('api_key = "[API_KEY]"', {"api_key": 1})
    # A private key block's base64 body is not also counted as high-entropy strings.
    _, counts = r.redact(PLANTED["private_key"][0][0])
    assert counts == {"private_key": 1}
    # A password in a URL and an IP host are both found; a JWT is one API key, not high entropy.
    out, counts = r.redact("dsn postgres://admin:S3cretPass@10.0.0.5:5432/db")
    assert out == "dsn postgres://admin:[SECRET]@[IP]:5432/db" and counts == {"secret": 1, "ip": 1}
    jwt = PLANTED["api_key"][0][-1]
    assert r.redact(f"token {jwt}") == ("token [API_KEY]", {"api_key": 1})


def test_secret_assignments_keep_the_key_and_skip_code_and_prose():
    r = PiiRedactor(kinds=("secret",))
    assert r.redact("password=hunter2\nAPI_KEY: 'zz99yy88'")[0] == "password=[SECRET]\nAPI_KEY: '[SECRET]'"
    assert (
        r.redact("callback https://x.io/cb?token=abc123XYZ&user=bob")[0]
        == "callback https://x.io/cb?token=[SECRET]&user=bob"
    )
    for text in [
        "password = get_password()",
        "client_secret=settings.CLIENT_SECRET",
        'password="<your password>"',
        "password: ********",
        "secret: the recipe is simple",
        "PASSWORD=${DB_PASSWORD}",
    ]:
        assert r.redact(text) == (text, {}), text


def test_entropy_threshold_and_rule():
    token = "Zx9Qm2Lr7Tb4Wk8Np3Vd6Hs1"
    assert shannon_entropy(token) == pytest.approx(4.585, abs=1e-3)  # 24 distinct characters
    assert is_high_entropy(token, 3.5) and not is_high_entropy(token, 4.6)
    assert not is_high_entropy("HGNetV2ConvLayerLight", 3.5)  # reads as words
    assert not is_high_entropy("cpython-311-x86_64-linux-gnu", 3.5)  # separator-dense
    assert not is_high_entropy("94f5e16708329d2f27164268", 3.5)  # hex needs 32+ characters
    text = f"session {token}"
    assert PiiRedactor(entropy_threshold=4.6).redact(text) == (text, {})


def test_step_redacts_text_and_meta_and_records_counts():
    docs = [
        {
            "id": "a",
            "text": "Mail jane.doe@example.com or call (212) 555-0199.",
            "source": "s",
            "meta": {
                "title": "Ticket from bob@example.org",
                "path": "inbox/a.txt",
                "split": "train",
                "tags": ["vip", "card 4111 1111 1111 1111"],
                "quality": {"score": 0.5},
            },
        },
        {"id": "b", "text": "Nothing personal here.", "source": "s", "meta": {"title": "Fees"}},
    ]
    step = PiiRedactor()
    before = copy.deepcopy(docs)
    kept, dropped = step.run(docs)
    assert step.name == "pii_redact" and dropped == [] and [d["id"] for d in kept] == ["a", "b"]
    a, b = kept
    assert a["text"] == "Mail [EMAIL] or call [PHONE]."
    assert a["meta"]["title"] == "Ticket from [EMAIL]" and a["meta"]["tags"] == ["vip", "card [CREDIT_CARD]"]
    assert a["meta"]["pii"] == {"email": 2, "phone": 1, "credit_card": 1}
    assert a["meta"]["split"] == "train" and a["meta"]["quality"] == {"score": 0.5}
    assert b["text"] == "Nothing personal here." and b["meta"] == {"title": "Fees", "pii": {}}
    assert step.totals == {"email": 2, "phone": 1, "credit_card": 1}
    # Deterministic and independent of batching: one document at a time gives the same records.
    again = [PiiRedactor().run([d])[0][0] for d in before]
    assert again == kept


def test_redact_value_and_pickling_for_workers():
    step = PiiRedactor(kinds=("email", "high_entropy"), entropy_threshold=3.0)
    value, counts = step.redact_value({"a": ["x@example.com", 3], "b": {"c": "y@example.org"}})
    assert value == {"a": ["[EMAIL]", 3], "b": {"c": "[EMAIL]"}} and counts == {"email": 2}
    clone = pickle.loads(pickle.dumps(step))
    text = "mail x@example.com, session Zx9Qm2Lr7Tb4Wk8Np3Vd6Hs1"
    assert (
        clone.redact(text)
        == step.redact(text)
        == ("mail [EMAIL], session [HIGH_ENTROPY]", {"email": 1, "high_entropy": 1})
    )
