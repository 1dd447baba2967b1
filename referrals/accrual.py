"""Reward accrual: every qualifying expense of a referral earns a reward per rule, once.

Which expenses qualify: those of the program's referrals made at or after the referral joined,
inside the program's dates (end included), above zero, that the rule's reward type lets earn (a
fixed reward only expenses in the program's currency) and whose rule conditions hold. The program
says who is credited: the partner, the referred client, or both (a row each).

How it stays at the write's floor:
- A watermark per rule (AccrualMark): ids of expenses, referrals and services accrued so far. A
  run first reads the highest *committed* ids (committed_marks), then reads only what is above
  the marks. Ids, not dates, so an expense arriving late with an old `created_at` is still new.
- A rule without measured conditions (the common case) only reads new expenses, in chunks of
  expense ids; each chunk commits with its mark, so an interrupted run resumes where it stopped.
  Expenses of referrals attached since the last run are read too (they may be older).
- A rule with measured conditions (sales per schedule period, services, referral counts: window
  sums and counts over the same rows) re-reads the whole of every partner that something new
  touched (a new expense, referral or, when counted, service), so every sum is whole; chunks hold
  whole partners.
- Where no reward of the rule can exist yet (above `rewards_through`) rows go in with a plain
  INSERT ... SELECT; elsewhere ON CONFLICT (rule, expense, role) DO NOTHING. Either way the unique
  key makes a duplicate impossible: a wrong guess would fail loudly, never pay twice.
On PostgreSQL the selection feeds `INSERT ... SELECT` with the amount rounded as numeric; on
SQLite, which has no decimal type, the rows are fetched and rounded by money_round.
"""

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import OperationalError, connection, transaction
from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone

from billing.models import Client, Expense, Service
from common.comparison import Comparison
from common.groups import ConditionGroups
from referrals.conditions import SERVICES, condition_type_of, moved_by
from referrals.models import (
    AccrualMark,
    ProgramState,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
)
from referrals.reward_types import reward_type_of

# Expense ids per statement on the plain path, referrals per statement on the measured path: a
# chunk is one transaction, the unit of progress and of resumption.
CHUNK_EXPENSES = 250_000
CHUNK_REFERRALS = 2000

# Held shared by every accrual transaction that writes; deleting an expense, rule or referral
# takes it exclusively (migration 0007's trigger), so a reward being written is never orphaned.
ACCRUAL_LOCK = 7_302_115_001

# How long committed_marks waits for writers in flight before it tries again, and how often.
MARKS_LOCK_TIMEOUT = "2s"
MARKS_ATTEMPTS = 5


@dataclass(frozen=True)
class Marks:
    expenses: int
    referrals: int
    services: int


def committed_marks() -> Marks:
    """The highest ids of expenses, referrals and services below which nothing is in flight.

    On PostgreSQL a SHARE lock on the three tables waits for the transactions writing them to end
    and holds new writers back only while three index lookups run; ids come from sequences
    (cache 1), so anything written afterwards has a higher id. Should a writer hold its
    transaction open, the lock gives up after MARKS_LOCK_TIMEOUT (so writers never queue behind
    accrual for long) and tries again. SQLite has one writer at a time, and it takes ids above
    every committed one, so a plain read is enough there.
    """
    for attempt in range(MARKS_ATTEMPTS):
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET LOCAL lock_timeout = '{MARKS_LOCK_TIMEOUT}'")
                        cursor.execute(
                            "LOCK TABLE billing_expense, referrals_referral, billing_service "
                            "IN SHARE MODE"
                        )
                        # LOCAL lasts to the end of an enclosing transaction, if any
                        cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
                return Marks(
                    expenses=Expense.objects.aggregate(m=Max("id"))["m"] or 0,
                    referrals=Referral.objects.aggregate(m=Max("id"))["m"] or 0,
                    services=Service.objects.aggregate(m=Max("id"))["m"] or 0,
                )
        except OperationalError:
            if attempt == MARKS_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# Who a reward credits, per role: the selection's column holding that client.
CREDITED = {Reward.Role.REFERRER: "partner_ref", Reward.Role.REFEREE: "client_id"}

ROLES = {
    ReferralProgram.Rewarded.REFERRER: [Reward.Role.REFERRER],
    ReferralProgram.Rewarded.REFEREE: [Reward.Role.REFEREE],
    ReferralProgram.Rewarded.BOTH: [Reward.Role.REFERRER, Reward.Role.REFEREE],
}


def _terms(rule: Rule, conditions: list[RuleCondition]) -> list[RuleCondition]:
    """The rule's conditions, and the program's min_referrals as one more AND-ed condition."""
    program = rule.program
    if not program.min_referrals:
        return conditions
    minimum = RuleCondition(
        rule=rule,
        ctype=RuleCondition.Type.PARTNER_REFERRALS,
        comparison=Comparison.GE,
        referral_count=program.min_referrals,
    )
    return [*conditions, minimum]


def qualifying_expenses(
    rule: Rule, *, until: datetime.date | None = None, conditions: list[RuleCondition] | None = None
) -> QuerySet:
    """Expenses of the rule's program that can earn under the rule (rewarded or not).

    Conditions are OR-ed inside a group and AND-ed across groups (an ungrouped condition is its
    own group). Measures are windows over the selected rows, filtered after they are taken.
    """
    program = rule.program
    conditions = list(rule.conditions.all()) if conditions is None else conditions
    terms = _terms(rule, conditions)
    last = min(d for d in (program.end_date, until) if d) if (program.end_date or until) else None
    expenses = Expense.objects.filter(
        client__referral__program=program,
        created_at__date__gte=program.start_date,
        created_at__gte=F("client__referral__joined_at"),
    ).filter(reward_type_of(rule.reward_type).earning_expenses(rule))
    if last:
        expenses = expenses.filter(created_at__date__lte=last)
    expenses = expenses.annotate(
        partner_ref=F("client__referral__partner_id"), referral_ref=F("client__referral__id")
    )
    measures = {}
    for condition in terms:
        kind = condition_type_of(condition.ctype)
        key = kind.measure_key(condition)
        if key is not None and key not in measures:
            measures[key] = kind.measure(condition, program, rule)
    expenses = expenses.annotate(**measures)
    return expenses.filter(
        ConditionGroups.of(terms).as_q(lambda c: condition_type_of(c.ctype).check(c))
    )


def _measured(rule: Rule, conditions: list[RuleCondition]) -> bool:
    """Whether the rule compares measures (sums, counts) that new rows elsewhere can move."""
    return any(condition_type_of(c.ctype).amount_field for c in _terms(rule, conditions))


def _insert(rule: Rule, selection: QuerySet, role: str, *, on_conflict: bool) -> int:
    """Write the selection's rewards for `role`; how many rows were added."""
    program = rule.program
    rows = selection.order_by().values(
        e_id=F("id"),
        e_credited=F(CREDITED[role]),
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
        if role == Reward.Role.REFERRER
        else program.referee_reward_kind
    )
    reward_type = reward_type_of(rule.reward_type)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            amount, amount_params = reward_type.amount_sql(rule)
            conflict = " ON CONFLICT (rule_id, expense_id, role) DO NOTHING" if on_conflict else ""
            cursor.execute(
                f"INSERT INTO {rewarded} (beneficiary_id, referral_id, rule_id, expense_id, "
                f"role, amount, currency_id, kind, created_at) "
                f"SELECT q.e_credited, q.e_referral, %s, q.e_id, %s, {amount}, q.e_currency, %s, %s "
                f"FROM ({pick}) q{conflict}",
                [rule.pk, role, *amount_params, kind, now, *params],
            )
            return cursor.rowcount
        cursor.execute(
            f"SELECT q.e_id, q.e_credited, q.e_referral, q.e_currency, q.e_amount, "
            f"q.e_minor_units FROM ({pick}) q WHERE NOT EXISTS (SELECT 1 FROM {rewarded} r "
            f"WHERE r.rule_id = %s AND r.expense_id = q.e_id AND r.role = %s)",
            [*params, rule.pk, role],
        )
        to_decimal = Expense._meta.get_field("amount").to_python
        rewards = [
            Reward(
                beneficiary_id=credited,
                referral_id=referral,
                rule=rule,
                expense_id=expense,
                role=role,
                amount=reward_type.amount(rule, to_decimal(amount), minor_units),
                currency_id=currency,
                kind=kind,
                created_at=now,
            )
            for expense, credited, referral, currency, amount, minor_units in cursor.fetchall()
        ]
    # SQLite runs one writer at a time, so what was picked is what gets inserted.
    Reward.objects.bulk_create(rewards, ignore_conflicts=True)
    return len(rewards)


def _locked_mark(rule: Rule) -> AccrualMark:
    """The rule's mark, locked until the transaction ends: runs of one rule take turns. Also
    holds ACCRUAL_LOCK shared for the transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [ACCRUAL_LOCK])
    AccrualMark.objects.get_or_create(rule=rule)
    return AccrualMark.objects.select_for_update().get(rule=rule)


class _RuleRun:
    """One rule's accrual up to `marks`; `until` (a day) leaves later expenses for another run
    and then moves no mark, so that a later run still reads them."""

    def __init__(self, rule: Rule, marks: Marks, until: datetime.date | None, progress):
        self.rule, self.marks, self.until, self.progress = rule, marks, until, progress
        self.conditions = list(rule.conditions.all())
        self.selection = qualifying_expenses(rule, until=until, conditions=self.conditions)
        self.roles = ROLES[rule.program.rewarded]
        self.added = 0

    def run(self) -> int:
        if _measured(self.rule, self.conditions):
            self._measured_run()
        else:
            self._plain_run()
        return self.added

    def _write(self, selection: QuerySet, *, on_conflict: bool) -> None:
        for role in self.roles:
            self.added += _insert(self.rule, selection, role, on_conflict=on_conflict)

    # A rule without measures: each expense decides alone -------------------------------------

    def _plain_run(self) -> None:
        marks, moving = self.marks, self.until is None
        with transaction.atomic():
            # Read under the lock, after the marks: a chunk another run had in flight is in.
            start = _locked_mark(self.rule).expenses_through
        cursor = start
        while True:
            with transaction.atomic():
                mark = _locked_mark(self.rule)
                low = mark.expenses_through if moving else cursor
                if low >= marks.expenses:
                    break
                # Chunks start at the next expense there is: ids are spread over every program
                # and provider, and a run after a long pause should not walk empty ranges.
                following = Expense.objects.filter(id__gt=low, id__lte=marks.expenses)
                first = following.order_by("id").values_list("id", flat=True).first()
                high = marks.expenses if first is None else first - 1 + CHUNK_EXPENSES
                high = min(high, marks.expenses)
                chunk = self.selection.filter(id__gt=low, id__lte=high)
                self._write(chunk, on_conflict=not moving or low < mark.rewards_through)
                mark.rewards_through = max(mark.rewards_through, high)
                if moving:
                    mark.expenses_through = high
                mark.save()
                cursor = high
            self.progress(self.added)
        with transaction.atomic():
            # Referrals attached since the last run: their expenses up to `start` were read while
            # they were nobody's referral. Later expenses were read above, after the marks, so
            # with every referral up to the marks in sight.
            mark = _locked_mark(self.rule)
            if mark.referrals_through < marks.referrals and start > 0:
                joined = self.selection.filter(
                    client__referral__id__gt=mark.referrals_through,
                    client__referral__id__lte=marks.referrals,
                    id__lte=start,
                )
                self._write(joined, on_conflict=True)
            if moving and mark.referrals_through < marks.referrals:
                mark.referrals_through = marks.referrals
                mark.save()
        self.progress(self.added)

    # A rule with measures: whole partners that something new touched -------------------------

    def _measured_run(self) -> None:
        AccrualMark.objects.get_or_create(rule=self.rule)
        mark = AccrualMark.objects.get(rule=self.rule)
        generation = mark.generation
        program = self.rule.program
        touched = None if mark.expenses_through == 0 else self._touched_partners(mark)
        for partners in _partner_chunks(program, touched):
            with transaction.atomic():
                locked = _locked_mark(self.rule)
                self._write(self.selection.filter(partners), on_conflict=locked.rewards_through > 0)
                locked.rewards_through = max(locked.rewards_through, self.marks.expenses)
                locked.save()
            self.progress(self.added)
        if self.until is not None:
            return
        with transaction.atomic():
            locked = _locked_mark(self.rule)
            if locked.generation == generation:  # not reset while this run read
                locked.expenses_through = max(locked.expenses_through, self.marks.expenses)
                locked.referrals_through = max(locked.referrals_through, self.marks.referrals)
                locked.services_through = max(locked.services_through, self.marks.services)
                locked.save()

    def _touched_partners(self, mark: AccrualMark) -> QuerySet:
        """Partners whose measures or candidates something new since `mark` can have moved: a new
        referral always touches its partner (a new count, new candidates)."""
        marks, program = self.marks, self.rule.program
        new_expenses = Expense.objects.filter(
            id__gt=mark.expenses_through, id__lte=marks.expenses
        ).values("client_id")
        touched = Q(client_id__in=new_expenses) | Q(
            id__gt=mark.referrals_through, id__lte=marks.referrals
        )
        kinds = moved_by(_terms(self.rule, self.conditions))
        if SERVICES in kinds:
            new_services = Service.objects.filter(
                id__gt=mark.services_through, id__lte=marks.services
            ).values("client_id")
            touched |= Q(client_id__in=new_services)
        return (
            Referral.objects.filter(program=program)
            .filter(touched)
            .values_list("partner_id", flat=True)
            .distinct()
        )


def _partner_chunks(program: ReferralProgram, touched: QuerySet | None) -> Iterator[Q]:
    """Filters selecting whole partners, about CHUNK_REFERRALS referrals each: ranges of partner
    ids when every partner is read, lists of the touched ones otherwise."""
    referrals = Referral.objects.filter(program=program)
    if touched is not None:
        referrals = referrals.filter(partner_id__in=list(touched))
    counts = (
        referrals.order_by("partner_id")
        .values("partner_id")
        .annotate(n=Count("id"))
        .values_list("partner_id", "n")
    )
    chunk: list[int] = []
    held = 0
    for partner_id, n in counts.iterator():
        chunk.append(partner_id)
        held += n
        if held >= CHUNK_REFERRALS:
            yield _partners_q(chunk, ranged=touched is None)
            chunk, held = [], 0
    if chunk:
        yield _partners_q(chunk, ranged=touched is None)


def _partners_q(partner_ids: list[int], *, ranged: bool) -> Q:
    if ranged:
        return Q(
            client__referral__partner_id__gte=partner_ids[0],
            client__referral__partner_id__lte=partner_ids[-1],
        )
    return Q(client__referral__partner_id__in=partner_ids)


def accruing_programs(day: datetime.date) -> QuerySet:
    """Programs that accrue: switched on and started by `day` (ended ones too: an expense of their
    last days may still arrive)."""
    return ReferralProgram.objects.in_states(
        [ProgramState.LIVE, ProgramState.ENDED], day=day
    ).select_related("provider__currency", "currency")


def rewards_accrue(
    *,
    program: ReferralProgram | None = None,
    until: datetime.date | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Accrue every reward due; returns how many were added (0 on a re-run).

    Call it outside a transaction: its chunks commit on their own (progress, resumption), and
    the brief lock committed_marks takes on the expenses would otherwise last to the end of the
    enclosing transaction.
    """
    programs = accruing_programs(until or timezone.localdate())
    if program is not None:
        programs = programs.filter(pk=program.pk)
    marks = committed_marks()
    added = 0
    for prog in programs:
        for rule in prog.rules.filter(active=True).prefetch_related("conditions"):
            rule.program = prog
            run = _RuleRun(rule, marks, until, lambda n, base=added: progress(base + n))
            added += run.run()
    return added
