"""A trie of literal strings matches exactly what their alternation, longest first, matches."""

from __future__ import annotations

import random
import re

from cogcore.curate.trie_regex import literal_alternation


def _alternation(strings: set[str]) -> str:
    return "|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True))


def test_trie_matches_what_the_longest_first_alternation_matches():
    rng = random.Random(0)
    letters = "ab -A."  # few letters: many shared prefixes, names inside names, boundaries everywhere
    for _ in range(2000):
        strings = {"".join(rng.choices(letters, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 12))}
        text = "".join(rng.choices(letters, k=60))
        # the learned-names rule's own boundaries, which make a shorter name win where a longer one fails
        wrap = r"(?<![\w-])(?:{})(?![\w-])"
        expected = [m.span() for m in re.finditer(wrap.format(_alternation(strings)), text)]
        assert [m.span() for m in re.finditer(wrap.format(literal_alternation(strings)), text)] == expected


def test_special_characters_are_literal_and_no_strings_match_nothing():
    pattern = re.compile(literal_alternation(["C++", "C#", "a.b", "(x)"]))
    assert pattern.findall("C++ C# axb a.b (x) C") == ["C++", "C#", "a.b", "(x)"]
    assert re.search(literal_alternation([]), "anything") is None
