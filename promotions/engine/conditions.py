"""One class per promotion condition type, behind a registry keyed by Condition.Type (django-oscar's
pattern): the fields the type needs and their ranges, how it reads, the facts about the client it
needs, and its check. A new condition type is one class here and one member of Condition.Type.

Checks work on plain values (a `ConditionSpec` compiled from the stored row, and `ClientFacts`), so
they run in the quote's per-promotion loop without touching the ORM.
"""

import datetime
import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar

from common.comparison import COMPARE, SYMBOLS
from common.periods import period_length_error, shift
from promotions.engine.facts import ClientFacts, Fact, Window
from promotions.engine.types import Kind, Order

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    holds: bool
    reason: str


@dataclass(frozen=True)
class ConditionSpec:
    """A stored condition as plain values, with the names its description shows and the
    providers its references belong to (a rule may only name its own provider's things)."""

    id: int | None
    ctype: str
    comparison: str = "ge"
    group_id: int | None = None
    pricelist_id: int | None = None
    pricelist_name: str = ""
    pricelist_provider_id: int | None = None
    period: Any = ()
    periodtype: str = ""
    periodlength: int | None = None
    amount: int | None = None
    currency_id: int | None = None
    currency_name: str = ""
    summa: Decimal | None = None
    affiliate_id: int | None = None
    affiliate_name: str = ""
    affiliate_provider_id: int | None = None
    account_group_id: int | None = None
    account_group_name: str = ""

    # The columns `compile` reads, as `values()` lookups, in field order.
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "ctype",
        "comparison",
        "group_id",
        "pricelist_id",
        "pricelist__name",
        "pricelist__provider_id",
        "period",
        "periodtype",
        "periodlength",
        "amount",
        "currency_id",
        "currency__iso",
        "summa",
        "affiliate_id",
        "affiliate__name",
        "affiliate__provider_id",
        "account_group_id",
        "account_group__name",
    )

    @classmethod
    def from_row(cls, row: tuple) -> "ConditionSpec":
        """A spec from a `values_list(*COLUMNS)` row: absent names read as empty text."""
        spec = cls(*row)
        names = ("pricelist_name", "currency_name", "affiliate_name", "account_group_name")
        blank = {name: "" for name in names if getattr(spec, name) is None}
        blank |= {"period": ()} if spec.period is None else {}
        blank |= {"period": tuple(spec.period)} if isinstance(spec.period, list) else {}
        blank |= {"periodtype": ""} if spec.periodtype is None else {}
        return replace(spec, **blank) if blank else spec

    @classmethod
    def of(cls, condition) -> "ConditionSpec":
        """The spec of a Condition instance (saved or not), for validation and its description."""

        def name(attr: str) -> str:
            related = getattr(condition, attr) if getattr(condition, f"{attr}_id") else None
            return str(related) if related is not None else ""

        def provider(attr: str) -> int | None:
            related = getattr(condition, attr) if getattr(condition, f"{attr}_id") else None
            return related.provider_id if related is not None else None

        return cls(
            id=condition.pk,
            ctype=condition.ctype,
            comparison=condition.comparison,
            group_id=condition.group_id,
            pricelist_id=condition.pricelist_id,
            pricelist_name=name("pricelist"),
            pricelist_provider_id=provider("pricelist"),
            period=tuple(condition.period)
            if isinstance(condition.period, list)
            else condition.period,
            periodtype=condition.periodtype,
            periodlength=condition.periodlength,
            amount=condition.amount,
            currency_id=condition.currency_id,
            currency_name=name("currency"),
            summa=condition.summa,
            affiliate_id=condition.affiliate_id,
            affiliate_name=name("affiliate"),
            affiliate_provider_id=provider("affiliate"),
            account_group_id=condition.account_group_id,
            account_group_name=name("account_group"),
        )


class ConditionCheck:
    """A condition type. Subclasses name the fields they need (`required`, as field names), the
    facts they read (`facts`), and give `describe` and `holds`; `errors` adds range checks."""

    required: ClassVar[tuple[str, ...]] = ()
    facts: ClassVar[frozenset[Fact]] = frozenset()

    def __init__(self, spec: ConditionSpec):
        self.spec = spec
        self.text = self.describe()
        # Conditions alike in everything but their id and group hold alike: a quote checks
        # each such kind once, however many promotions repeat it.
        self.signature = (type(self), repr(replace(spec, id=None, group_id=None)))

    @classmethod
    def errors(cls, spec: ConditionSpec, *, provider_id: int | None) -> dict[str, str]:
        """Why the stored values cannot make this condition, by field (empty when they can)."""
        return {
            name: "Required for this condition type."
            for name in cls.required
            if getattr(spec, f"{name}_id", getattr(spec, name, None)) in (None, "")
        }

    def windows(self) -> tuple[Window, ...]:
        """The expense windows this condition sums (loaded once per quote for every condition)."""
        return ()

    def describe(self) -> str:
        raise NotImplementedError

    def holds(self, facts: ClientFacts, order: Order) -> Outcome:
        raise NotImplementedError

    def verdict(self, ok: bool, detail: str = "") -> Outcome:
        return Outcome(ok, f"{self.text} {'holds' if ok else 'fails'}{detail}")

    def compare(self, actual: Any, expected: Any, what: str) -> Outcome:
        return self.verdict(COMPARE[self.spec.comparison](actual, expected), f": {what} {actual}")

    @property
    def op(self) -> str:
        return SYMBOLS.get(self.spec.comparison, "?")

    @property
    def window_text(self) -> str:
        s = self.spec
        return f"{s.periodlength} {s.periodtype}(s)" if s.periodlength else ""


CHECKS: dict[str, type[ConditionCheck]] = {}


def check(kind: str):
    def register(cls: type[ConditionCheck]) -> type[ConditionCheck]:
        CHECKS[kind] = cls
        return cls

    return register


class Broken(ConditionCheck):
    """A stored condition that cannot be checked (written around the services, or by an older
    version): it refuses its promotion with the reason, and every other promotion still applies."""

    def __init__(self, spec: ConditionSpec, problems: dict[str, str]):
        self.problems = problems
        super().__init__(spec)

    def describe(self) -> str:
        return f"condition {self.spec.id} ({self.spec.ctype})"

    def holds(self, facts, order):
        why = "; ".join(f"{field}: {text}" for field, text in sorted(self.problems.items()))
        return Outcome(False, f"{self.text} cannot be checked ({why})")


def _period_errors(spec: ConditionSpec) -> dict[str, str]:
    problem = period_length_error(spec.periodtype, spec.periodlength)
    return {"periodlength": problem} if problem else {}


def _periods_error(spec: ConditionSpec) -> dict[str, str]:
    if not isinstance(spec.period, list | tuple) or not all(
        isinstance(p, int) and p >= 1 for p in spec.period
    ):
        return {"period": "Order periods are whole numbers of months, 1 or more."}
    return {}


def _own(spec_provider: int | None, provider_id: int | None, field: str, what: str) -> dict:
    if provider_id is not None and spec_provider is not None and spec_provider != provider_id:
        return {field: f"The {what} belongs to another provider."}
    return {}


@check("has_tariff")
class HasTariff(ConditionCheck):
    """Services of the tariff the client holds, plus those this order adds."""

    required = ("pricelist", "amount")
    facts = frozenset({Fact.SERVICES})

    @classmethod
    def errors(cls, spec, *, provider_id):
        return {
            **super().errors(spec, provider_id=provider_id),
            **_periods_error(spec),
            **_own(spec.pricelist_provider_id, provider_id, "pricelist", "tariff"),
        }

    def describe(self):
        return f"services of tariff {self.spec.pricelist_name} {self.op} {self.spec.amount}"

    def _period_matches(self, period: int) -> bool:
        return not self.spec.period or period in self.spec.period

    def holds(self, facts, order):
        tariff = self.spec.pricelist_id
        held = sum(
            1
            for s in facts.services
            if s.tariff_id == tariff and not s.closed and self._period_matches(s.period)
        )
        added = sum(
            1
            for line in order.lines
            if line.kind == Kind.NEW
            and line.tariff_id == tariff
            and self._period_matches(line.period)
        )
        return self.compare(held + added, self.spec.amount, "the client has")


@check("service_count")
class ServiceCount(ConditionCheck):
    required = ("amount",)
    facts = frozenset({Fact.SERVICES})

    def describe(self):
        return f"active services {self.op} {self.spec.amount}"

    def holds(self, facts, order):
        active = sum(1 for s in facts.services if s.active)
        return self.compare(active, self.spec.amount, "active services:")


@check("paid_services")
class PaidServices(ConditionCheck):
    required = ("amount",)
    facts = frozenset({Fact.SERVICES})

    def describe(self):
        return f"paid services {self.op} {self.spec.amount}"

    def holds(self, facts, order):
        paid = sum(1 for s in facts.services if s.paid)
        return self.compare(paid, self.spec.amount, "paid services:")


@check("expense_sum")
class ExpenseSum(ConditionCheck):
    required = ("summa", "currency", "periodtype", "periodlength")
    facts = frozenset({Fact.EXPENSES})

    @classmethod
    def errors(cls, spec, *, provider_id):
        return {**super().errors(spec, provider_id=provider_id), **_period_errors(spec)}

    def windows(self):
        s = self.spec
        return (Window(s.currency_id, s.periodtype, s.periodlength),)

    def describe(self):
        s = self.spec
        return f"expenses in the last {self.window_text} {self.op} {s.summa} {s.currency_name}"

    def holds(self, facts, order):
        spent = facts.expense_sums[self.windows()[0]]
        return self.compare(spent, self.spec.summa, "spent")


@check("registration")
class Registration(ConditionCheck):
    required = ("periodtype", "periodlength")
    facts = frozenset({Fact.REGISTRATION})

    @classmethod
    def errors(cls, spec, *, provider_id):
        return {**super().errors(spec, provider_id=provider_id), **_period_errors(spec)}

    def describe(self):
        return f"registered within the last {self.window_text}"

    def holds(self, facts, order):
        s = self.spec
        since = shift(facts.at, periodtype=s.periodtype, length=-s.periodlength)
        registered: datetime.datetime = facts.registered_at
        return self.verdict(since <= registered <= facts.at, f": registered {registered:%Y-%m-%d}")


@check("account_group")
class AccountGroup(ConditionCheck):
    required = ("account_group",)
    facts = frozenset({Fact.GROUPS})

    def describe(self):
        return f"client in group {self.spec.account_group_name}"

    def holds(self, facts, order):
        return self.verdict(self.spec.account_group_id in facts.group_ids)


@check("affiliate")
class Affiliate(ConditionCheck):
    required = ("affiliate",)
    facts = frozenset({Fact.REFERRALS})

    @classmethod
    def errors(cls, spec, *, provider_id):
        return {
            **super().errors(spec, provider_id=provider_id),
            **_own(spec.affiliate_provider_id, provider_id, "affiliate", "referral program"),
        }

    def describe(self):
        return f"referred through {self.spec.affiliate_name}"

    def holds(self, facts, order):
        return self.verdict(self.spec.affiliate_id in facts.referral_program_ids)


def condition_errors(spec: ConditionSpec, *, provider_id: int | None) -> dict[str, str]:
    kind = CHECKS.get(spec.ctype)
    if kind is None:
        return {"ctype": f"There is no condition type {spec.ctype!r}."}
    return kind.errors(spec, provider_id=provider_id)


def condition_check(spec: ConditionSpec, *, provider_id: int | None = None) -> ConditionCheck:
    """The check of a stored condition; a condition its type cannot accept becomes `Broken`."""
    problems = condition_errors(spec, provider_id=provider_id)
    if problems:
        return Broken(spec, problems)
    return CHECKS[spec.ctype](spec)


def safely(check: ConditionCheck, facts: ClientFacts, order: Order) -> Outcome:
    """A check's outcome; a check that fails on stored data refuses instead of failing the quote."""
    try:
        return check.holds(facts, order)
    except Exception as exc:  # a rule's data must never take the provider's quotes down
        logger.exception("condition %s could not be checked", check.spec.id)
        return Outcome(False, f"{check.text} cannot be checked ({exc.__class__.__name__})")
