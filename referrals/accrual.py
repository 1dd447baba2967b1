"""Reward accrual: every qualifying expense of a referral earns its partner a reward per rule, once.

Facts (sums per referral and schedule period, services per referral, referrals per partner) are
read with a few GROUP BY queries per rule; expenses stream in primary-key batches and rewards are
inserted with ON CONFLICT DO NOTHING on (rule, expense), so a re-run adds nothing and an
interrupted run resumes where it stopped.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, DateTimeField, F, Sum
from django.db.models.functions import TruncMonth, TruncQuarter, TruncYear
from django.utils import timezone

from billing.models import Expense, Service
from common.comparison import COMPARE
from common.groups import grouped_terms
from common.money import money_round
from referrals.models import Referral, ReferralProgram, Reward, Rule, RuleCondition

BATCH = 5000

PERIOD_OF = {
    Rule.Schedule.MONTH: TruncMonth,
    Rule.Schedule.QUARTER: TruncQuarter,
    Rule.Schedule.YEAR: TruncYear,
}


@dataclass
class RuleFacts:
    sales: dict[tuple[int, object], Decimal] = field(default_factory=dict)  # (client, period)
    partner_sales: dict[tuple[int, object], Decimal] = field(default_factory=dict)
    services: dict[int, int] = field(default_factory=dict)
    referrals: dict[int, int] = field(default_factory=dict)


# The value each condition type compares, from the facts about one expense's referral and period.
MEASURES: dict[str, Callable[[RuleFacts, int, int, object], Decimal | int]] = {
    RuleCondition.Type.REFERRAL_SALES: lambda f, client, partner, period: f.sales.get(
        (client, period), Decimal(0)
    ),
    RuleCondition.Type.REFERRAL_SERVICES: lambda f, client, partner, period: f.services.get(
        client, 0
    ),
    RuleCondition.Type.PARTNER_REFERRALS: lambda f, client, partner, period: f.referrals.get(
        partner, 0
    ),
    RuleCondition.Type.ALL_REFERRALS_SALES: lambda f, client, partner, period: f.partner_sales.get(
        (partner, period), Decimal(0)
    ),
}


def _holds(c: RuleCondition, facts: RuleFacts, client: int, partner: int, period) -> bool:
    if c.ctype == RuleCondition.Type.NONE:
        return True
    value = MEASURES[c.ctype](facts, client, partner, period)
    return COMPARE[c.comparison](value, getattr(c, RuleCondition.AMOUNT_FIELD[c.ctype]))


def conditions_hold(conditions, facts: RuleFacts, client: int, partner: int, period) -> bool:
    """OR inside a group, AND across groups (an ungrouped condition is its own group)."""
    return all(
        any(_holds(c, facts, client, partner, period) for c in members)
        for members in grouped_terms(conditions)
    )


def _period(rule: Rule):
    trunc = PERIOD_OF.get(rule.schedule)
    return trunc("created_at", output_field=DateTimeField()) if trunc else None


def _facts(rule: Rule, expenses) -> RuleFacts:
    facts = RuleFacts()
    period = _period(rule)
    grouped = expenses.annotate(period=period) if period is not None else expenses
    keys = ["client_id", "period"] if period is not None else ["client_id"]
    partner_of = dict(
        Referral.objects.filter(program=rule.program).values_list("client_id", "partner_id")
    )
    for row in grouped.values(*keys).annotate(total=Sum("amount")).order_by():
        key = (row["client_id"], row.get("period"))
        facts.sales[key] = row["total"]
        partner_key = (partner_of[row["client_id"]], row.get("period"))
        facts.partner_sales[partner_key] = facts.partner_sales.get(partner_key, 0) + row["total"]
    facts.services = dict(
        Service.objects.filter(client__referral__program=rule.program)
        .values("client_id")
        .annotate(n=Count("id"))
        .values_list("client_id", "n")
    )
    facts.referrals = dict(
        Referral.objects.filter(program=rule.program)
        .values("partner_id")
        .annotate(n=Count("id"))
        .values_list("partner_id", "n")
    )
    return facts


def _expenses(program: ReferralProgram, until: datetime.date | None):
    last = min(d for d in (program.end_date, until) if d) if (program.end_date or until) else None
    expenses = Expense.objects.filter(
        client__referral__program=program, created_at__date__gte=program.start_date
    )
    if last:
        expenses = expenses.filter(created_at__date__lte=last)
    if program.account_group_restrict_id:
        expenses = expenses.exclude(
            client__referral__partner__groups=program.account_group_restrict_id
        )
    return expenses


def rewards_accrue(
    *,
    program: ReferralProgram | None = None,
    until: datetime.date | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Accrue every reward due; returns how many were added (0 on a re-run)."""
    programs = ReferralProgram.objects.filter(status=ReferralProgram.Status.ACTIVE)
    if program is not None:
        programs = programs.filter(pk=program.pk)
    added = 0
    for prog in programs:
        expenses = _expenses(prog, until)
        for rule in prog.rules.filter(active=True).prefetch_related("conditions"):
            conditions = list(rule.conditions.all())
            facts = _facts(rule, expenses)
            period = _period(rule)
            todo = expenses.exclude(rewards__rule=rule).select_related("currency")
            todo = todo.annotate(
                partner_ref=F("client__referral__partner_id"),
                referral_ref=F("client__referral__id"),
            )
            if period is not None:
                todo = todo.annotate(period=period)
            last_pk = 0
            while True:
                batch = list(todo.filter(pk__gt=last_pk).order_by("pk")[:BATCH])
                if not batch:
                    break
                last_pk = batch[-1].pk
                rewards = [
                    Reward(
                        partner_id=e.partner_ref,
                        referral_id=e.referral_ref,
                        rule=rule,
                        expense=e,
                        amount=_amount(rule, e),
                        currency=e.currency,
                        kind=prog.referrer_reward_kind,
                        created_at=timezone.now(),
                    )
                    for e in batch
                    if conditions_hold(
                        conditions, facts, e.client_id, e.partner_ref, getattr(e, "period", None)
                    )
                ]
                # Counted over this batch's expenses only (the unique index answers it), so the
                # cost does not grow with the ledger; a concurrent run's rows are not counted twice.
                mine = Reward.objects.filter(
                    rule=rule, expense_id__in=[r.expense_id for r in rewards]
                )
                with transaction.atomic():
                    before = mine.count()
                    Reward.objects.bulk_create(rewards, ignore_conflicts=True)
                    added += mine.count() - before
                progress(added)
    return added


def _amount(rule: Rule, expense: Expense) -> Decimal:
    if rule.reward_type == Rule.RewardType.FIXED:
        return rule.amount
    share = expense.amount * rule.amount / 100
    return money_round(share, minor_units=expense.currency.minor_units)
