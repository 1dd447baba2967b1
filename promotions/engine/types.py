"""The engine's inputs and results: plain values, no ORM."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from promotions.codegen import normalize_code


class TariffRow(Protocol):
    """What the engine reads of a tariff: a model instance, or the record a quote reads by hand
    (common.rawsql.Columns.record)."""

    @property
    def pk(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def charge(self) -> str: ...
    @property
    def provider_id(self) -> int: ...


class CurrencyRow(Protocol):
    """What the engine reads of a currency (a model instance or a record)."""

    @property
    def iso(self) -> str: ...
    @property
    def minor_units(self) -> int: ...


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


class Applied(NamedTuple):
    """One promotion's part of a line's discount: the first, then the combinable ones stacked."""

    promotion_id: int
    code: str | None
    discount: Decimal


@dataclass
class LineQuote:
    line: Line
    discount: Decimal
    promotion_id: int | None = None  # the promotion that applied first
    code: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    applied: tuple[Applied, ...] = ()

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


@dataclass(frozen=True)
class BudgetView:
    """What a budgeted promotion has left in the order's period and what this order needs of it
    (None: no such budget). A quote shows it; only a redemption reserves it."""

    promotion_id: int
    period: str
    needs: Decimal
    left: Decimal | None
    client_left: Decimal | None

    def refusal(self) -> str | None:
        if self.left is not None and self.needs > self.left:
            return f"budget: {self.left} left, this order needs {self.needs}"
        if self.client_left is not None and self.needs > self.client_left:
            return f"client budget: {self.client_left} left, this order needs {self.needs}"
        return None


@dataclass
class Quote:
    order: Order
    lines: list[LineQuote]
    codes: list[CodeVerdict]
    # The provider's rules version the quote was made at (a redemption re-checks it under lock).
    rules_version: int = 0
    # Every promotion's verdict on every line, or only the winners', the codes' and near misses'.
    explained: bool = False
    budgets: list[BudgetView] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((lq.final_price for lq in self.lines), Decimal(0))

    @property
    def discount_total(self) -> Decimal:
        return sum((lq.discount for lq in self.lines), Decimal(0))

    def used_codes(self) -> list[str]:
        """The codes that gave at least one line its discount, in order of first use."""
        return list(dict.fromkeys(a.code for lq in self.lines for a in lq.applied if a.code))

    def applied_with(self, promotion_id: int | None) -> str | None:
        """The code a promotion applied with on some line (None: it did not, or without one)."""
        return next(
            (
                a.code
                for lq in self.lines
                for a in lq.applied
                if a.promotion_id == promotion_id and a.code
            ),
            None,
        )
