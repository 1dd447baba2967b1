"""promotions.codegen: template spaces, the regex of a template, filling and random fillings."""

import re
import string
from collections import Counter

import pytest

from promotions import codegen


@pytest.mark.parametrize(
    ("template", "digits_only", "space"),
    [
        ("WELCOME", False, 1),
        ("A?", False, 36),
        ("A?", True, 10),
        ("??", True, 100),
        ("X-???-?", False, 36**4),
        ("????????", True, 10**8),
    ],
)
def test_template_space_counts_every_code_the_template_can_make(template, digits_only, space):
    # given a template and an alphabet
    # when its space is computed
    # then it is the alphabet size to the power of the number of placeholders
    assert codegen.template_space(template, digits_only=digits_only) == space


@pytest.mark.parametrize(
    ("digits_only", "alphabet"),
    [(False, string.ascii_uppercase + string.digits), (True, string.digits)],
)
def test_alphabet_is_upper_case_letters_and_digits_or_digits_only(digits_only, alphabet):
    assert sorted(codegen.alphabet_for(digits_only=digits_only)) == sorted(alphabet)


@pytest.mark.parametrize(
    ("template", "digits_only", "code", "matches"),
    [
        ("SPRING-??", False, "SPRING-A7", True),
        ("SPRING-??", False, "SPRING-99", True),
        ("SPRING-??", False, "SPRING-a7", False),  # lower case is never generated
        ("SPRING-??", False, "SPRING-A", False),  # too short
        ("SPRING-??", False, "SPRING-A7X", False),  # too long
        ("SPRING-??", False, "XSPRING-A7", False),  # something before the template
        ("SPRING-??", False, "SPRING_A7", False),  # another literal
        ("SPRING-??", False, "SPRING-A-", False),  # a placeholder is one letter or digit
        ("SPRING-??", True, "SPRING-42", True),
        ("SPRING-??", True, "SPRING-4X", False),  # letters are not digits
        ("A.B?", False, "A.B1", True),
        ("A.B?", False, "AXB1", False),  # a dot in a template is a dot, not "any character"
        ("(A+)?", False, "(A+)Z", True),
        ("(A+)?", False, "AAZ", False),
        ("[X]?", True, "[X]0", True),
        ("[X]?", True, "X0", False),
        ("WELCOME", False, "WELCOME", True),
        ("WELCOME", False, "WELCOME1", False),
    ],
)
def test_template_regex_matches_the_templates_codes_and_only_them(
    template, digits_only, code, matches
):
    # given the regex of a template
    pattern = codegen.template_regex(template, digits_only=digits_only)
    # when a code is tested against it
    # then only codes the template could have produced match
    assert bool(re.search(pattern, code)) is matches


@pytest.mark.parametrize(
    ("template", "fillings", "codes"),
    [
        ("A?B?", ["12", "XY"], ["A1B2", "AXBY"]),
        ("??", ["Q7"], ["Q7"]),
        ("?-END", ["Z"], ["Z-END"]),
        ("FIXED", [""], ["FIXED"]),
        ("A?B?", [], []),
    ],
)
def test_fill_puts_the_fillings_characters_into_the_placeholders_in_order(
    template, fillings, codes
):
    assert codegen.fill(template, fillings) == codes


@pytest.mark.parametrize("filling", ["1", "123"])
def test_fill_refuses_a_filling_of_the_wrong_length(filling):
    # given a template with two placeholders
    # when a filling of another length is put in
    # then it fails rather than making a code of the wrong shape
    with pytest.raises(ValueError):
        codegen.fill("A?B?", [filling])


@pytest.mark.parametrize(
    ("template", "digits_only"),
    [("SPRING-??????", False), ("PIN-????", True), ("?X?Y?", False), ("??????????", True)],
)
def test_random_codes_match_their_template(template, digits_only):
    # given a template
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    length = template.count(codegen.PLACEHOLDER)
    # when codes are made from random fillings
    codes = codegen.fill(template, codegen.random_fillings(alphabet, length, 500))
    # then there are as many codes as asked and each one is a code of the template
    assert len(codes) == 500
    pattern = codegen.template_regex(template, digits_only=digits_only)
    assert all(re.search(pattern, c) for c in codes), [
        c for c in codes if not re.search(pattern, c)
    ]


@pytest.mark.parametrize("digits_only", [False, True])
def test_random_fillings_have_the_asked_count_length_and_alphabet(digits_only):
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    # when 1,000 fillings of 7 characters are drawn
    fillings = codegen.random_fillings(alphabet, 7, 1000)
    # then each has 7 characters of the alphabet
    assert len(fillings) == 1000
    assert {len(f) for f in fillings} == {7}
    assert set("".join(fillings)) <= set(alphabet)


def test_random_fillings_of_no_characters_are_empty_strings():
    assert codegen.random_fillings(codegen.LETTERS_AND_DIGITS, 0, 3) == ["", "", ""]


def test_random_fillings_are_distinct():
    # given a space of 36**10 fillings
    # when 20,000 are drawn (a repeat has a chance of about 1e-7)
    fillings = codegen.random_fillings(codegen.LETTERS_AND_DIGITS, 10, 20_000)
    # then they are all different
    assert len(set(fillings)) == 20_000


@pytest.mark.parametrize(
    ("alphabet", "length", "count"),
    [
        # 252 of the 256 byte values map onto 36 characters, 7 each.
        (codegen.LETTERS_AND_DIGITS, 7, 36),
        # 250 of the 256 byte values map onto 10 digits, 25 each.
        (codegen.DIGITS, 5, 50),
    ],
)
def test_random_fillings_give_each_character_the_same_share_of_byte_values(
    monkeypatch, alphabet, length, count
):
    # given a random source that yields every byte value once, in order, then repeats
    def every_byte_once(n: int) -> bytes:
        return (bytes(range(256)) * (n // 256 + 1))[:n]

    monkeypatch.setattr(codegen.os, "urandom", every_byte_once)
    # when exactly as many characters are drawn as the byte values that are kept
    fillings = codegen.random_fillings(alphabet, length, count)
    # then every character occurs equally often: the bytes that would favour some are dropped
    counts = Counter("".join(fillings))
    assert set(counts) == set(alphabet)
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("digits_only", [False, True])
def test_random_fillings_are_uniform_over_the_alphabet(digits_only):
    # given many random characters
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    per_char = 5000
    text = "".join(codegen.random_fillings(alphabet, 10, per_char * len(alphabet) // 10))
    # when their frequencies are compared with a uniform spread (chi-square)
    counts = Counter(text)
    chi2 = sum((counts[ch] - per_char) ** 2 / per_char for ch in alphabet)
    # then the spread is far inside what chance allows (35 degrees of freedom at most;
    # 100 is beyond the 1e-7 tail), while a plain `byte % 36` would score about 350
    assert chi2 < 100, counts
