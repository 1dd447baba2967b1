"""The engine's inputs and results: plain values, no ORM."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from promotions.codegen import normalize_code


class Kind:
    NEW = "new"
    RENEWAL = "renewal"
    CHOICES = (NEW, RENEWAL)


@dataclass(frozen=True)
class Line:
    tariff_id: int
    period: int
    price: Decimal
    currency: str
    kind: str = Kind.NEW
    service_id: int | None = None


@dataclass(frozen=True)
class Order:
    """An order as the engine reads it; its codes are always normalised, blanks and repeats
    dropped, so every check (the guessing brake, the quote, the fingerprint) sees one spelling."""

    client_id: int
    provider_id: int
    at: datetime.datetime
    lines: tuple[Line, ...]
    codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        codes = (normalize_code(c) for c in self.codes)
        object.__setattr__(self, "codes", tuple(dict.fromkeys(c for c in codes if c)))


class Verdict(NamedTuple):
    """Whether a promotion gave this line its discount, and if not, why (a tuple: an explained
    quote of a large catalogue makes thousands)."""

    promotion_id: int
    applied: bool
    reason: str


@dataclass
class LineQuote:
    line: Line
    discount: Decimal
    promotion_id: int | None = None
    code: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def final_price(self) -> Decimal:
        return self.line.price - self.discount


@dataclass(frozen=True)
class CodeVerdict:
    code: str
    valid: bool
    reason: str
    promotion_id: int | None = None
    code_id: int | None = None
    # The code's row as the quote read it (None for a code that does not exist here).
    row: Any = field(default=None, compare=False, repr=False)


@dataclass
class Quote:
    order: Order
    lines: list[LineQuote]
    codes: list[CodeVerdict]
    # The provider's rules version the quote was made at (a redemption re-checks it under lock).
    rules_version: int = 0
    # Every promotion's verdict on every line, or only the winners', the codes' and near misses'.
    explained: bool = False

    @property
    def total(self) -> Decimal:
        return sum((lq.final_price for lq in self.lines), Decimal(0))

    @property
    def discount_total(self) -> Decimal:
        return sum((lq.discount for lq in self.lines), Decimal(0))

    def used_codes(self) -> list[str]:
        """The codes that gave at least one line its discount, in order of first use."""
        return list(dict.fromkeys(lq.code for lq in self.lines if lq.code))
