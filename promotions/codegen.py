"""Promo-code text: how a typed code is normalised, and templates where each `?` becomes one random
character."""

import os
import re
import string
from collections.abc import Iterator

PLACEHOLDER = "?"
LETTERS_AND_DIGITS = string.ascii_uppercase + string.digits
DIGITS = string.digits


def normalize_code(code: str) -> str:
    """Codes are stored and compared in upper case without surrounding spaces: what a client
    types (" welcome20 ") names the stored code (WELCOME20)."""
    return code.strip().upper()


def is_template(code: str) -> bool:
    return PLACEHOLDER in code


def alphabet_for(*, digits_only: bool) -> str:
    return DIGITS if digits_only else LETTERS_AND_DIGITS


def template_space(template: str, *, digits_only: bool) -> int:
    """How many distinct codes the template can produce."""
    return len(alphabet_for(digits_only=digits_only)) ** template.count(PLACEHOLDER)


def template_regex(template: str, *, digits_only: bool) -> str:
    """A regex matching exactly the codes the template can produce (for counting taken ones)."""
    klass = "[0-9]" if digits_only else "[A-Z0-9]"
    return "^" + "".join(klass if ch == PLACEHOLDER else re.escape(ch) for ch in template) + "$"


def random_fillings(alphabet: str, length: int, count: int) -> list[str]:
    """`count` random strings of `length` characters, unbiased, from one urandom read per batch."""
    if length == 0:
        return [""] * count
    size = len(alphabet)
    # Bytes >= cutoff are dropped so every character is equally likely.
    cutoff = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < cutoff else 0 for b in range(256))
    need = length * count
    chars = bytearray()
    while len(chars) < need:
        raw = os.urandom(int((need - len(chars)) * 256 / cutoff) + 64)
        chars += raw.translate(table).replace(b"\x00", b"")
    text = chars[:need].decode("ascii")
    return [text[i : i + length] for i in range(0, need, length)]


def fill(template: str, fillings: Iterator[str] | list[str]) -> list[str]:
    """Put each filling's characters into the template's placeholders, in order."""
    parts = template.split(PLACEHOLDER)
    out = []
    for filling in fillings:
        pieces = [parts[0]]
        for ch, rest in zip(filling, parts[1:], strict=True):
            pieces.append(ch)
            pieces.append(rest)
        out.append("".join(pieces))
    return out
