"""Quality filters (Gopher, Gopher repetition, C4, FineWeb): one planted document per drop reason."""

import random
from collections import Counter

import pytest

from cogcore.curate.quality import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    _NGrams,
    words_of,
)

CLEAN = (
    "The branch opens at nine in the morning and closes at five in the evening.\n"
    "Customers who arrive with an appointment are served first by the duty manager.\n"
    "Savings accounts earn interest that is paid to the account at the end of each month.\n"
    "A replacement card takes about a week to arrive by post after it has been ordered.\n"
    "Our advisers can explain which account suits a small business that is just starting out.\n"
    "Please bring a photo identity document when you visit to open a new account with us."
)


def doc(text: str, doc_id: str = "d") -> dict:
    return {"id": doc_id, "text": text, "source": "s", "meta": {}}


def lines(*parts: str) -> str:
    return "\n".join(parts)


@pytest.mark.parametrize(
    "step", [GopherQualityFilter(), GopherRepetitionFilter(), FineWebQualityFilter(), C4QualityFilter()]
)
def test_clean_prose_passes_every_filter(step):
    kept, dropped = step.run([doc(CLEAN)])
    assert dropped == [] and kept[0]["text"] == CLEAN


# Gopher quality -----------------------------------------------------------------------------

FILLER = " ".join(f"word{i}x" for i in range(60))  # 60 distinct 6-letter words, no stop words


@pytest.mark.parametrize(
    "text, reason",
    [
        ("The cat sat with the dog and that was all.", "gopher_short_doc"),
        (" ".join(["to be or it is a an of the up"] * 6), "gopher_below_avg_word_len"),
        (
            " ".join(["the internationalization responsibilities with extraordinarily"] * 12),
            "gopher_above_avg_word_len",
        ),
        (CLEAN + "\n" + " ".join(f"#tag{i}" for i in range(20)), "gopher_symbol_ratio"),
        (CLEAN + "\n" + "so on... " * 30, "gopher_symbol_ratio"),
        (lines(*[f"- the loan {i} is paid to the bank with interest" for i in range(10)]), "gopher_bullet_lines"),
        (
            lines(*[f"The loan {i} is paid to the bank with interest{'...' if i < 4 else '.'}" for i in range(10)]),
            "gopher_ellipsis_lines",
        ),
        (CLEAN + "\n" + " ".join(str(1000 + i) for i in range(40)), "gopher_alpha_words"),
        (FILLER, "gopher_stop_words"),
    ],
)
def test_gopher_quality_reasons(text, reason):
    assert GopherQualityFilter().keep(doc(text)) == reason


def test_gopher_quality_thresholds_change_outcomes():
    assert GopherQualityFilter().keep(doc(CLEAN)) is True
    assert GopherQualityFilter(max_doc_words=60).keep(doc(CLEAN)) == "gopher_long_doc"
    short = "The cat sat with the dog and that was all."
    assert GopherQualityFilter(min_doc_words=5).keep(doc(short)) is True
    assert GopherQualityFilter(min_doc_words=None).keep(doc(short)) is True
    assert GopherQualityFilter(min_stop_words=None).keep(doc(FILLER)) is True
    assert GopherQualityFilter(stop_words=("word1x", "word2x")).keep(doc(FILLER)) is True


def test_gopher_stop_words_match_case_insensitively():
    text = " ".join(f"The{i} word{i}x" for i in range(30)) + " The With"
    assert GopherQualityFilter().keep(doc(text)) is True


def test_gopher_alpha_ratio_counts_punctuation_as_datatrove_does():
    # A price list: every word holds a letter except the numbers, but "$", ":" and "." are tokens.
    text = lines(*[f"The fee for item {chr(97 + i)} with that plan: $5." for i in range(12)])
    words = words_of(text)
    assert "$" in words and ":" in words
    assert GopherQualityFilter().keep(doc(text)) == "gopher_alpha_words"
    assert GopherQualityFilter(alpha_ratio_counts_punctuation=False).keep(doc(text)) is True


# Gopher repetition --------------------------------------------------------------------------


def sentence(i: int) -> str:
    return f"Sentence number {i} talks about topic{i} in its own words{i}."


LONG = " ".join(["A long passage repeated once"] * 5)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("\n\n".join(["Same paragraph here."] * 3 + [sentence(1)]), "gopher_dup_para_frac"),
        ("\n\n".join([LONG] + [sentence(i) for i in range(4)] + [LONG]), "gopher_dup_para_char_frac"),
        (lines("Same line.", "Same line.", "Same line.", sentence(1)), "gopher_dup_line_frac"),
        (lines(LONG, *[sentence(i) for i in range(4)], LONG), "gopher_dup_line_char_frac"),
        (" ".join(f"alpha beta x{i}" for i in range(20)), "gopher_top_2_gram"),
    ],
)
def test_gopher_repetition_reasons(text, reason):
    assert GopherRepetitionFilter().keep(doc(text)) == reason


@pytest.mark.parametrize("n", [3, 4])
def test_gopher_top_n_gram_reasons(n):
    gram = " ".join(f"g{k}" for k in range(n))
    text = " ".join(f"{gram} u{i}" for i in range(15))
    step = GopherRepetitionFilter(top_n_grams=((n, 0.18),), dup_n_grams=())
    assert step.keep(doc(text)) == f"gopher_top_{n}_gram"
    assert GopherRepetitionFilter(top_n_grams=((n, 0.99),), dup_n_grams=()).keep(doc(text)) is True


@pytest.mark.parametrize("n", range(5, 11))
def test_gopher_duplicated_n_gram_reasons(n):
    gram = " ".join(f"w{k}" for k in range(n))
    text = f"{gram} {' '.join(f'u{i}' for i in range(3 * n))} {gram}"
    step = GopherRepetitionFilter(top_n_grams=(), dup_n_grams=((n, 0.1),))
    assert step.keep(doc(text)) == f"gopher_duplicated_{n}_n_grams"
    assert GopherRepetitionFilter(top_n_grams=(), dup_n_grams=((n + 1, 0.1),)).keep(doc(text)) is True


# DataTrove 0.10.1's reference algorithms (gopher_repetition_filter.py), for an exact comparison.
def reference_top(words, n):
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count if count > 1 else 0  # ours counts repeats only (documented)


def reference_all_duplicate(words, n):
    unique, chars, idx = set(), 0, 0
    while idx < len(words) - n + 1:
        gram = tuple(words[idx : idx + n])
        if gram in unique:
            chars += sum(map(len, gram))
            idx += n
        else:
            unique.add(gram)
            idx += 1
    return chars


def test_ngram_fractions_match_datatrove_reference():
    rng = random.Random(0)
    for _ in range(300):
        vocab = ["a", "bb", "ccc", "the", ".", "fee", "account"][: rng.randint(2, 7)]
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        grams = _NGrams(words)
        for n in (2, 3, 4):
            assert grams.top_chars(n) == reference_top(words, n), (words, n)
        for n in range(5, 11):
            assert grams.duplicated_chars(n) == reference_all_duplicate(words, n), (words, n)


# C4 -----------------------------------------------------------------------------------------


def test_c4_removes_failing_lines_and_keeps_the_rest():
    text = lines(
        "## Opening hours",  # no end mark
        "The branch opens at nine in the morning.",
        "Call us now!",  # three words
        "Please enable JavaScript to view the rest of this page.",
        "Read our privacy policy before you sign anything.",
        "Customers with an appointment are served first[1].",  # citation removed
        "The manager signs every loan above ten thousand.",
        "Wait for it ...",  # ellipsis
        "See " + "x" * 30 + " for details and more.",  # word over max_word_length
    )
    kept, dropped = C4QualityFilter(max_word_length=20).run([doc(text)])
    assert dropped == []
    assert kept[0]["text"] == lines(
        "The branch opens at nine in the morning.",
        "Customers with an appointment are served first.",
        "The manager signs every loan above ten thousand.",
    )
    assert kept[0]["meta"]["quality"]["c4_lines_removed"] == 6


@pytest.mark.parametrize(
    "text, reason",
    [
        (CLEAN + "\nLorem ipsum dolor sit amet, consectetur adipiscing.", "c4_lorem_ipsum"),
        (CLEAN + "\nThe function returns { value } to the caller.", "c4_curly_bracket"),
        (
            lines("The branch opens at nine in the morning.", "The branch closes at five in the evening."),
            "c4_too_few_sentences",
        ),
    ],
)
def test_c4_drop_reasons(text, reason):
    kept, dropped = C4QualityFilter().run([doc(text)])
    assert kept == [] and dropped[0][1] == reason
    assert dropped[0][0]["text"] == text  # a dropped document is left as it came


def test_c4_curly_bracket_in_a_removed_line_does_not_drop_the_page():
    kept, dropped = C4QualityFilter().run([doc(CLEAN + "\nfunction f() {")])
    assert dropped == [] and kept[0]["text"] == CLEAN


def test_c4_flags_and_thresholds_change_outcomes():
    two = lines("The branch opens at nine in the morning.", "The branch closes at five in the evening.")
    assert C4QualityFilter(min_num_sentences=2).run([doc(two)])[0][0]["text"] == two
    heading = lines("Opening hours of the branch", CLEAN)
    kept, _ = C4QualityFilter(filter_no_terminal_punct=False).run([doc(heading)])
    assert kept[0]["text"] == heading
    kept, _ = C4QualityFilter(filter_javascript=False, filter_policy=False).run(
        [doc(lines(CLEAN, "Please enable JavaScript and read the privacy policy."))]
    )
    assert kept[0]["text"].endswith("privacy policy.")
    assert C4QualityFilter(filter_curly_bracket=False).run([doc(CLEAN + "\nIt returns { x } here.")])[1] == []
    kept, dropped = C4QualityFilter(min_num_sentences=None).run([doc("no end mark\nhere")])
    assert dropped[0][1] == "c4_empty"


# FineWeb ------------------------------------------------------------------------------------

NO_PUNCT = lines(*[f"This line number {i} has no terminal punctuation at its end" for i in range(10)])


@pytest.mark.parametrize(
    "text, reason",
    [
        ("  \n \n", "empty"),
        (NO_PUNCT, "fineweb_line_punct_ratio"),
        (lines(*[f"Item {i} is short." for i in range(14)], CLEAN), "fineweb_short_line_ratio"),
        (
            lines(CLEAN, "Customers who arrive with an appointment are served first by the duty manager."),
            "fineweb_char_dup_ratio",
        ),
        (
            lines(*[f"Extraordinarilylongword{i}alpha unbelievablylongword{i}beta." for i in range(20)]),
            "fineweb_list_ratio",
        ),
    ],
)
def test_fineweb_reasons(text, reason):
    assert FineWebQualityFilter().keep(doc(text)) == reason


def test_fineweb_thresholds_change_outcomes():
    assert FineWebQualityFilter(line_punct_exclude_zero=True).keep(doc(NO_PUNCT)) is True
    assert FineWebQualityFilter(line_punct_thr=None).keep(doc(NO_PUNCT)) is True
    dup = lines(CLEAN, "Customers who arrive with an appointment are served first by the duty manager.")
    assert FineWebQualityFilter(char_duplicates_ratio=0.2).keep(doc(dup)) is True
    short = lines(*[f"Item {i} is short." for i in range(14)], CLEAN)
    assert FineWebQualityFilter(short_line_length=10).keep(doc(short)) is True
