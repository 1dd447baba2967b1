"""Reward accrual: every qualifying expense of a referral earns a reward per rule, once.

The program says who is credited: the partner, the referred client, or both (a row each).

One statement per rule and chunk of partners selects the qualifying expenses. What conditions
compare (sales of a referral per schedule period, sales of all a partner's referrals per period,
services of a referral, referrals of a partner) are window sums and counted subqueries over the
same rows, and the rule's condition groups become its WHERE. On PostgreSQL the selection feeds
`INSERT ... SELECT ... ON CONFLICT (rule, expense) DO NOTHING` with the amount rounded as numeric;
on SQLite, which has no decimal type, the rows are fetched and rounded by money_round. A chunk of
partners holds all their referrals, so its windows are whole; each chunk commits on its own, so an
interrupted run resumes, and a re-run adds nothing.
"""

import datetime
from collections.abc import Callable, Iterator

from django.db import connection, transaction
from django.db.models import (
    Count,
    DateTimeField,
    Expression,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, TruncMonth, TruncQuarter, TruncYear
from django.utils import timezone

from billing.models import Client, Expense, Service
from common.comparison import LOOKUPS
from common.groups import ConditionGroups
from common.money import money_round
from referrals.models import Referral, ReferralProgram, Reward, Rule, RuleCondition

# Referrals per chunk: a chunk is one transaction, the unit of progress and of resumption.
CHUNK_REFERRALS = 2000

PERIOD_OF = {
    Rule.Schedule.MONTH: TruncMonth,
    Rule.Schedule.QUARTER: TruncQuarter,
    Rule.Schedule.YEAR: TruncYear,
}


def _period(rule: Rule) -> list[Expression]:
    trunc = PERIOD_OF.get(rule.schedule)
    return [trunc("created_at", output_field=DateTimeField())] if trunc else []


def _referral_sales(program: ReferralProgram, rule: Rule) -> Expression:
    return Window(Sum("amount"), partition_by=[F("client_id"), *_period(rule)])


def _all_referrals_sales(program: ReferralProgram, rule: Rule) -> Expression:
    return Window(Sum("amount"), partition_by=[F("partner_ref"), *_period(rule)])


# Counts are wrapped as windows (a MAX over a value constant in its partition), so that every
# measure is filtered after the windows are taken: a plain filter would go into the inner WHERE and
# drop rows before a partner-wide sum is taken, making that sum too low.


def _count_per(rows: QuerySet, group: str, outer: str) -> Expression:
    """How many `rows` share the expense's `outer` value in their `group` column, as a window."""
    counted = rows.order_by().values(group).annotate(n=Count("id")).values("n")
    count = Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
    return Window(Max(count), partition_by=[F(outer)])


def _referral_services(program: ReferralProgram, rule: Rule) -> Expression:
    services = Service.objects.filter(client_id=OuterRef("client_id"))
    return _count_per(services, "client_id", "client_id")


def _partner_referrals(program: ReferralProgram, rule: Rule) -> Expression:
    referrals = Referral.objects.filter(program=program, partner_id=OuterRef("partner_ref"))
    return _count_per(referrals, "partner_id", "partner_ref")


# The value each condition type compares: an annotation name and how to compute it per expense.
MEASURES: dict[str, tuple[str, Callable[[ReferralProgram, Rule], Expression]]] = {
    RuleCondition.Type.REFERRAL_SALES: ("referral_sales", _referral_sales),
    RuleCondition.Type.REFERRAL_SERVICES: ("referral_services", _referral_services),
    RuleCondition.Type.PARTNER_REFERRALS: ("partner_referrals", _partner_referrals),
    RuleCondition.Type.ALL_REFERRALS_SALES: ("all_referrals_sales", _all_referrals_sales),
}


def _condition_q(c: RuleCondition) -> Q | None:
    """The condition as a filter, or None when it always holds."""
    if c.ctype == RuleCondition.Type.NONE:
        return None
    name, _ = MEASURES[c.ctype]
    threshold = getattr(c, RuleCondition.AMOUNT_FIELD[c.ctype])
    return Q(**{f"{name}__{LOOKUPS[c.comparison]}": threshold})


def qualifying_expenses(
    rule: Rule, *, until: datetime.date | None = None, conditions: list[RuleCondition] | None = None
) -> QuerySet:
    """Expenses of the rule's program that its conditions let earn a reward (rewarded or not).

    Conditions are OR-ed inside a group and AND-ed across groups (an ungrouped condition is its
    own group); the program's min_referrals is one more AND-ed term.
    """
    program = rule.program
    conditions = list(rule.conditions.all()) if conditions is None else conditions
    expenses = _program_expenses(program, until).annotate(
        partner_ref=F("client__referral__partner_id"), referral_ref=F("client__referral__id")
    )
    used = {c.ctype for c in conditions if c.ctype in MEASURES}
    if program.min_referrals:
        used.add(RuleCondition.Type.PARTNER_REFERRALS)
    expenses = expenses.annotate(
        **{MEASURES[t][0]: MEASURES[t][1](program, rule) for t in sorted(used)}
    )
    expenses = expenses.filter(ConditionGroups.of(conditions).as_q(_condition_q))
    if program.min_referrals:
        expenses = expenses.filter(partner_referrals__gte=program.min_referrals)
    return expenses


def _program_expenses(program: ReferralProgram, until: datetime.date | None) -> QuerySet:
    last = min(d for d in (program.end_date, until) if d) if (program.end_date or until) else None
    expenses = Expense.objects.filter(
        client__referral__program=program, created_at__date__gte=program.start_date
    )
    if last:
        expenses = expenses.filter(created_at__date__lte=last)
    return expenses


def _partner_chunks(program: ReferralProgram) -> Iterator[tuple[int, int]]:
    """Ranges of partner ids holding about CHUNK_REFERRALS referrals each."""
    counts = (
        Referral.objects.filter(program=program)
        .order_by("partner_id")
        .values("partner_id")
        .annotate(n=Count("id"))
        .values_list("partner_id", "n")
    )
    first = held = None
    for partner_id, n in counts.iterator():
        if first is None:
            first, held = partner_id, 0
        held += n
        if held >= CHUNK_REFERRALS:
            yield first, partner_id
            first = None
    if first is not None:
        yield first, partner_id


# Who a reward credits, per beneficiary: the selection's column holding that client.
CREDITED = {Reward.Beneficiary.REFERRER: "partner_ref", Reward.Beneficiary.REFEREE: "client_id"}

BENEFICIARIES = {
    ReferralProgram.Rewarded.REFERRER: [Reward.Beneficiary.REFERRER],
    ReferralProgram.Rewarded.REFEREE: [Reward.Beneficiary.REFEREE],
    ReferralProgram.Rewarded.BOTH: [Reward.Beneficiary.REFERRER, Reward.Beneficiary.REFEREE],
}


def _accrue_chunk(rule: Rule, selection: QuerySet, beneficiary: str) -> int:
    program = rule.program
    rows = selection.order_by().values(
        e_id=F("id"),
        e_credited=F(CREDITED[beneficiary]),
        e_referral=F("referral_ref"),
        e_currency=F("currency_id"),
        e_amount=F("amount"),
        e_minor_units=F("currency__minor_units"),
    )
    inner_sql, params = rows.query.sql_with_params()
    rewarded = Reward._meta.db_table
    pick = f"SELECT q.* FROM ({inner_sql}) q WHERE q.e_amount > 0"
    if program.account_group_restrict_id:
        # Measured over every expense, but the restricted group's clients are credited nothing.
        membership = Client.groups.through._meta.db_table
        pick += (
            f" AND NOT EXISTS (SELECT 1 FROM {membership} m "
            f"WHERE m.client_id = q.e_credited AND m.clientgroup_id = %s)"
        )
        params = (*params, program.account_group_restrict_id)
    now = timezone.now()
    kind = (
        program.referrer_reward_kind
        if beneficiary == Reward.Beneficiary.REFERRER
        else program.referee_reward_kind
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # No NOT EXISTS against the ledger: planned while the ledger is still empty, it becomes
            # a scan per row of the rows this very statement inserts. The unique index answers.
            amount = (
                "ROUND(q.e_amount * %s / 100, q.e_minor_units)"
                if rule.reward_type == Rule.RewardType.PERCENT
                else "%s"
            )
            cursor.execute(
                f"INSERT INTO {rewarded} (partner_id, referral_id, rule_id, expense_id, "
                f"beneficiary, amount, currency_id, kind, created_at) "
                f"SELECT q.e_credited, q.e_referral, %s, q.e_id, %s, {amount}, q.e_currency, %s, %s "
                f"FROM ({pick}) q ON CONFLICT (rule_id, expense_id, beneficiary) DO NOTHING",
                [rule.pk, beneficiary, rule.amount, kind, now, *params],
            )
            return cursor.rowcount
        cursor.execute(
            f"SELECT q.e_id, q.e_credited, q.e_referral, q.e_currency, q.e_amount, "
            f"q.e_minor_units FROM ({pick}) q WHERE NOT EXISTS (SELECT 1 FROM {rewarded} r "
            f"WHERE r.rule_id = %s AND r.expense_id = q.e_id AND r.beneficiary = %s)",
            [*params, rule.pk, beneficiary],
        )
        rewards = [
            Reward(
                partner_id=credited,
                referral_id=referral,
                rule=rule,
                expense_id=expense,
                beneficiary=beneficiary,
                amount=_amount(rule, amount, minor_units),
                currency_id=currency,
                kind=kind,
                created_at=now,
            )
            for expense, credited, referral, currency, amount, minor_units in cursor.fetchall()
        ]
        # SQLite runs one writer at a time, so what was picked is what gets inserted.
        Reward.objects.bulk_create(rewards, ignore_conflicts=True)
    return len(rewards)


def _amount(rule: Rule, expense_amount, minor_units: int):
    if rule.reward_type == Rule.RewardType.FIXED:
        return rule.amount
    share = Expense._meta.get_field("amount").to_python(expense_amount) * rule.amount / 100
    return money_round(share, minor_units=minor_units)


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
        chunks = list(_partner_chunks(prog))
        for rule in prog.rules.filter(active=True).prefetch_related("conditions"):
            rule.program = prog
            selection = qualifying_expenses(
                rule, until=until, conditions=list(rule.conditions.all())
            )
            for first, last in chunks:
                chunk = selection.filter(
                    client__referral__partner_id__gte=first,
                    client__referral__partner_id__lte=last,
                )
                for beneficiary in BENEFICIARIES[prog.rewarded]:
                    added += _accrue_chunk(rule, chunk, beneficiary)
                progress(added)
    return added
