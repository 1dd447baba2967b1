"""Referral rule condition types, one class each (django-oscar's pattern).

A type carries the threshold field it reads and that field's validation, its description, the
measure accrual compares (the fact: a window sum or a count over the expenses being accrued),
the check, and what makes the measure move (so that accrual knows which old expenses a new row can
turn into earners). The model's clean() and __str__, accrual and the doors read them from
REGISTRY; adding a type is one class here and one choice in RuleCondition.Type.

`orderperiods` (the specification's "period of the referral's service orders", in months) narrows
a condition to orders of those periods: what it measures counts only such orders, and an expense
meets it only when it is for a service ordered for one of those periods. Empty means any order.
"""

from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import (
    Count,
    DateTimeField,
    Expression,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, TruncMonth, TruncQuarter, TruncYear

from billing.models import Service
from common.comparison import LOOKUPS, SYMBOLS
from referrals.models import Referral, ReferralProgram, Rule, RuleCondition

# The longest order period a condition may name, in months.
MAX_ORDER_PERIOD = 120

PERIOD_OF = {
    Rule.Schedule.MONTH: TruncMonth,
    Rule.Schedule.QUARTER: TruncQuarter,
    Rule.Schedule.YEAR: TruncYear,
}

# What can make a measure move: new rows of these kinds.
EXPENSES, SERVICES, REFERRALS = "expenses", "services", "referrals"


def _periods(condition: RuleCondition) -> list[int]:
    return sorted({int(p) for p in condition.orderperiods or []})


def _schedule_window(rule: Rule) -> list[Expression]:
    trunc = PERIOD_OF.get(rule.schedule)
    return [trunc("created_at", output_field=DateTimeField())] if trunc else []


def _count_per(rows, group: str, outer: str) -> Expression:
    """How many `rows` share the expense's `outer` value in their `group` column, as a window.

    Counts are wrapped as windows (a MAX over a value constant in its partition), so that every
    measure is filtered after the windows are taken: a plain filter would go into the inner WHERE
    and drop rows before a partner-wide sum is taken, making that sum too low.
    """
    counted = rows.order_by().values(group).annotate(n=Count("id")).values("n")
    count = Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
    return Window(Max(count), partition_by=[F(outer)])


class ConditionType:
    ctype: str = ""
    amount_field: str | None = None
    moved_by: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return RuleCondition.Type(self.ctype).label

    # validation and description --------------------------------------------------------------

    def validate(self, condition: RuleCondition) -> None:
        errors = {}
        if self.amount_field and getattr(condition, self.amount_field) is None:
            errors[self.amount_field] = "Required for this condition type."
        periods = condition.orderperiods or []
        if not isinstance(periods, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= MAX_ORDER_PERIOD
            for p in periods
        ):
            errors["orderperiods"] = (
                f"Order periods are whole numbers of months from 1 to {MAX_ORDER_PERIOD}."
            )
        if errors:
            raise ValidationError(errors)

    def describe(self, condition: RuleCondition) -> str:
        text = self.label
        if self.amount_field:
            value = getattr(condition, self.amount_field)
            shown = format(value.normalize(), "f") if isinstance(value, Decimal) else value
            text = f"{text} {SYMBOLS[condition.comparison]} {shown}"
        periods = _periods(condition)
        if periods:
            text += f" (orders of {', '.join(map(str, periods))} months)"
        return text

    # accrual ---------------------------------------------------------------------------------

    def measure_key(self, condition: RuleCondition) -> str | None:
        """The annotation holding the measure; conditions measuring the same thing share it."""
        if self.amount_field is None:
            return None
        periods = _periods(condition)
        return f"m{self.ctype}_{'_'.join(map(str, periods)) or 'any'}"

    def measure(
        self, condition: RuleCondition, program: ReferralProgram, rule: Rule
    ) -> Expression | None:
        return None

    def check(self, condition: RuleCondition) -> Q | None:
        """The condition as a filter over the measured expenses, or None when it always holds."""
        terms = Q()
        periods = _periods(condition)
        if periods:
            terms &= Q(service__period__in=periods)
        key = self.measure_key(condition)
        if key is not None:
            threshold = getattr(condition, self.amount_field)
            terms &= Q(**{f"{key}__{LOOKUPS[condition.comparison]}": threshold})
        return terms or None


def _orders_q(condition: RuleCondition, prefix: str = "") -> Q:
    periods = _periods(condition)
    return Q(**{f"{prefix}period__in": periods}) if periods else Q()


class NoCondition(ConditionType):
    ctype = RuleCondition.Type.NONE


class ReferralSales(ConditionType):
    """The referral's expenses in the rule's schedule period, in the program's currency."""

    ctype = RuleCondition.Type.REFERRAL_SALES
    amount_field = "amount_ctype_1"
    moved_by = frozenset({EXPENSES})
    partition = "client_id"

    def measure(self, condition, program, rule):
        counted = Q(currency_id=program.reward_currency.pk) & _orders_q(condition, "service__")
        return Window(
            Sum("amount", filter=counted), partition_by=[F(self.partition), *_schedule_window(rule)]
        )


class AllReferralsSales(ReferralSales):
    """The expenses of all the partner's referrals in the rule's schedule period."""

    ctype = RuleCondition.Type.ALL_REFERRALS_SALES
    amount_field = "amount_ctype_4"
    partition = "partner_ref"


class ReferralServices(ConditionType):
    """The services the referral has ordered (over the whole program)."""

    ctype = RuleCondition.Type.REFERRAL_SERVICES
    amount_field = "item_count"
    moved_by = frozenset({SERVICES})

    def measure(self, condition, program, rule):
        services = Service.objects.filter(client_id=OuterRef("client_id")).filter(
            _orders_q(condition)
        )
        return _count_per(services, "client_id", "client_id")


class PartnerReferrals(ConditionType):
    """The partner's referrals in the program, now."""

    ctype = RuleCondition.Type.PARTNER_REFERRALS
    amount_field = "referral_count"
    moved_by = frozenset({REFERRALS})

    def measure(self, condition, program, rule):
        referrals = Referral.objects.filter(program=program, partner_id=OuterRef("partner_ref"))
        return _count_per(referrals, "partner_id", "partner_ref")


REGISTRY: dict[str, ConditionType] = {
    t.ctype: t
    for t in (
        NoCondition(),
        ReferralSales(),
        ReferralServices(),
        PartnerReferrals(),
        AllReferralsSales(),
    )
}
assert set(REGISTRY) == set(RuleCondition.Type.values), "every condition type has its class"


def condition_type_of(ctype: str) -> ConditionType:
    return REGISTRY[ctype]


def moved_by(conditions: Iterable[RuleCondition]) -> frozenset[str]:
    """The kinds of new rows that can make old expenses meet these conditions."""
    kinds: set[str] = set()
    for condition in conditions:
        kinds |= condition_type_of(condition.ctype).moved_by
    return frozenset(kinds)
