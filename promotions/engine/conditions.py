"""One check per condition type, behind a registry keyed by Condition.Type."""

from dataclasses import dataclass
from typing import Any

from billing.models import Service
from common.comparison import COMPARE
from common.groups import grouped_terms
from common.periods import shift
from promotions.engine.facts import ClientFacts, expense_window
from promotions.engine.types import Kind, Order
from promotions.models import Condition


@dataclass(frozen=True)
class Outcome:
    holds: bool
    reason: str


class ConditionCheck:
    def __init__(self, condition: Condition):
        self.condition = condition

    def holds(self, facts: ClientFacts, order: Order) -> Outcome:
        raise NotImplementedError

    def compare(self, actual: Any, expected: Any, what: str) -> Outcome:
        ok = COMPARE[self.condition.comparison](actual, expected)
        verb = "holds" if ok else "fails"
        return Outcome(ok, f"{self.condition.describe()} {verb}: {what} {actual}")


CHECKS: dict[str, type[ConditionCheck]] = {}


def check(kind: Condition.Type):
    def register(cls: type[ConditionCheck]) -> type[ConditionCheck]:
        CHECKS[kind] = cls
        return cls

    return register


def _period_matches(condition: Condition, period: int) -> bool:
    return not condition.period or period in condition.period


@check(Condition.Type.HAS_TARIFF)
class HasTariff(ConditionCheck):
    """Services of the tariff the client holds, plus those this order adds."""

    def holds(self, facts, order):
        c = self.condition
        held = sum(
            1
            for s in facts.services
            if s.tariff_id == c.pricelist_id
            and s.status != Service.Status.CLOSED
            and _period_matches(c, s.period)
        )
        added = sum(
            1
            for line in order.lines
            if line.kind == Kind.NEW
            and line.tariff_id == c.pricelist_id
            and _period_matches(c, line.period)
        )
        return self.compare(held + added, c.amount, "the client has")


@check(Condition.Type.SERVICE_COUNT)
class ServiceCount(ConditionCheck):
    def holds(self, facts, order):
        active = sum(1 for s in facts.services if s.status == Service.Status.ACTIVE)
        return self.compare(active, self.condition.amount, "active services:")


@check(Condition.Type.PAID_SERVICES)
class PaidServices(ConditionCheck):
    def holds(self, facts, order):
        paid = sum(1 for s in facts.services if s.paid)
        return self.compare(paid, self.condition.amount, "paid services:")


@check(Condition.Type.EXPENSE_SUM)
class ExpenseSum(ConditionCheck):
    def holds(self, facts, order):
        spent = facts.expense_sums[expense_window(self.condition, facts.at)]
        return self.compare(spent, self.condition.summa, "spent")


@check(Condition.Type.REGISTRATION)
class Registration(ConditionCheck):
    def holds(self, facts, order):
        c = self.condition
        since = shift(facts.at, periodtype=c.periodtype, length=-c.periodlength)
        registered = facts.client.registration_date
        ok = since <= registered <= facts.at
        verb = "holds" if ok else "fails"
        return Outcome(ok, f"{c.describe()} {verb}: registered {registered:%Y-%m-%d}")


@check(Condition.Type.ACCOUNT_GROUP)
class AccountGroup(ConditionCheck):
    def holds(self, facts, order):
        ok = self.condition.account_group_id in facts.group_ids
        return Outcome(ok, f"{self.condition.describe()} {'holds' if ok else 'fails'}")


@check(Condition.Type.AFFILIATE)
class Affiliate(ConditionCheck):
    def holds(self, facts, order):
        ok = self.condition.affiliate_id in facts.referral_program_ids
        return Outcome(ok, f"{self.condition.describe()} {'holds' if ok else 'fails'}")


def conditions_hold(conditions: list[Condition], facts: ClientFacts, order: Order) -> Outcome:
    """Conditions in one group are OR-ed, groups (an ungrouped condition is its own) AND-ed."""
    for members in grouped_terms(conditions):
        outcomes = [CHECKS[c.ctype](c).holds(facts, order) for c in members]
        if not any(o.holds for o in outcomes):
            return Outcome(False, "condition not met: " + " OR ".join(o.reason for o in outcomes))
    return Outcome(True, "conditions met")
