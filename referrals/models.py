"""Referral programs in BILLmanager's vocabulary, with the fields DigiPay's door maps onto."""

import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Expense, Provider
from common.comparison import Comparison
from common.groups import GroupedCondition
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, money_format

PARTNER_PLACEHOLDER = "@ID@"
# Clients one partner's link may attach from one address in a day, unless the program says.
DEFAULT_LINK_ATTACHMENTS_PER_ADDRESS = 3
# The longest hold a program may set (ten years): the date arithmetic stays in range.
MAX_HOLD_DAYS = 3650


class RewardKind(models.TextChoices):
    CASH = "cash", "cash"
    POINTS = "points", "points"


class ProgramState(models.TextChoices):
    """Where a program stands on a day: the one definition of "live" (see ReferralProgram.state_on
    and ReferralProgramQuerySet.in_states)."""

    PLANNED = "planned", "planned (starts later)"
    LIVE = "live", "live"
    ENDED = "ended", "ended"
    INACTIVE = "inactive", "switched off"


def _state_q(state: ProgramState, day: datetime.date) -> Q:
    switched_on = Q(status="active")
    not_ended = Q(end_date__isnull=True) | Q(end_date__gte=day)
    return {
        ProgramState.INACTIVE: ~switched_on,
        ProgramState.PLANNED: switched_on & Q(start_date__gt=day),
        ProgramState.LIVE: switched_on & Q(start_date__lte=day) & not_ended,
        ProgramState.ENDED: switched_on & Q(end_date__lt=day),
    }[state]


class ReferralProgramQuerySet(models.QuerySet):
    def in_states(self, states, *, day: datetime.date) -> "ReferralProgramQuerySet":
        wanted = Q(pk__in=[])
        for state in states:
            wanted |= _state_q(state, day)
        return self.filter(wanted)

    def live(self, day: datetime.date | None = None) -> "ReferralProgramQuerySet":
        """Programs that attach and enrol clients on `day` (today by default)."""
        return self.in_states([ProgramState.LIVE], day=day or timezone.localdate())


class ReferralProgram(models.Model):
    class Rewarded(models.TextChoices):
        REFERRER = "referrer", "the referrer"
        REFEREE = "referee", "the referred client"
        BOTH = "both", "both"

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        INACTIVE = "inactive", "inactive"

    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="referral_programs"
    )
    name = models.CharField(max_length=200)
    promocode = models.CharField(
        "promo code template",
        max_length=100,
        blank=True,
        help_text=f"{PARTNER_PLACEHOLDER} marks where the partner's id goes, e.g. FRIEND@ID@.",
    )
    start_date = models.DateField(default=timezone.localdate)
    end_date = models.DateField(null=True, blank=True, help_text="Included.")
    assign_by_default = models.BooleanField(default=False)
    url = models.URLField(blank=True, help_text="Partner links are this URL with ?from=PARTNER_ID.")
    account_group = models.ForeignKey(
        ClientGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only clients of this group may take part.",
    )
    account_group_restrict = models.ForeignKey(
        ClientGroup,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Clients of this group earn no rewards.",
    )
    referrer_reward_kind = models.CharField(
        max_length=10, choices=RewardKind.choices, default=RewardKind.CASH
    )
    referee_reward_kind = models.CharField(
        max_length=10, choices=RewardKind.choices, default=RewardKind.CASH
    )
    rewarded = models.CharField(max_length=10, choices=Rewarded.choices, default=Rewarded.REFERRER)
    audience = models.CharField(max_length=200, blank=True)
    min_referrals = models.PositiveIntegerField(null=True, blank=True)
    max_referrals = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    currency = models.ForeignKey(
        Currency, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    hold_days = models.PositiveIntegerField(
        "hold, days",
        default=0,
        help_text="A reward becomes payable this many days after the purchase that earned it.",
    )
    payout_minimum = models.DecimalField(
        "payout minimum",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        default=0,
        help_text="A partner is paid only once their payable balance reaches this amount (in the "
        "program's currency; balances in other currencies only need to be above zero).",
    )
    link_attachments_per_address = models.PositiveIntegerField(
        "link attachments per address and day",
        null=True,
        blank=True,
        default=DEFAULT_LINK_ATTACHMENTS_PER_ADDRESS,
        help_text="How many clients one partner's link may attach from one address in 24 hours "
        "(more are refused as likely fraud); empty: no limit.",
    )

    objects = ReferralProgramQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                F("provider"),
                name="referralprogram_unique_title",
                violation_error_code="unique",
                violation_error_message="A program with this title exists already.",
            ),
            models.UniqueConstraint(
                fields=["provider"],
                condition=Q(assign_by_default=True),
                name="referralprogram_one_default_per_provider",
                violation_error_message="Only one referral program of a provider is assigned by default.",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="referralprogram_start_le_end",
            ),
            models.CheckConstraint(
                condition=Q(min_referrals__isnull=True)
                | Q(max_referrals__isnull=True)
                | Q(max_referrals__gte=F("min_referrals")),
                name="referralprogram_min_le_max_referrals",
            ),
            models.CheckConstraint(
                condition=Q(hold_days__lte=MAX_HOLD_DAYS), name="referralprogram_hold_in_range"
            ),
            models.CheckConstraint(
                condition=Q(payout_minimum__gte=0), name="referralprogram_payout_minimum_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def state_on(self, day: datetime.date | None = None) -> ProgramState:
        day = day or timezone.localdate()
        return next(s for s in ProgramState if self._in_state(s, day))

    def _in_state(self, state: ProgramState, day: datetime.date) -> bool:
        # The same terms as _state_q, read off the instance.
        on = self.status == self.Status.ACTIVE
        return {
            ProgramState.INACTIVE: not on,
            ProgramState.PLANNED: on and self.start_date > day,
            ProgramState.LIVE: on
            and self.start_date <= day
            and (self.end_date is None or self.end_date >= day),
            ProgramState.ENDED: on and self.end_date is not None and self.end_date < day,
        }[state]

    @property
    def reward_currency(self) -> Currency:
        """The currency fixed rewards and sales thresholds are in: the program's, else its
        provider's."""
        return self.currency or self.provider.currency

    def clean(self) -> None:
        errors = {}
        if self.promocode and self.promocode.count(PARTNER_PLACEHOLDER) != 1:
            errors["promocode"] = f"The template contains {PARTNER_PLACEHOLDER} exactly once."
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors["end_date"] = "The end date is before the start date."
        if (
            self.min_referrals is not None
            and self.max_referrals is not None
            and self.max_referrals < self.min_referrals
        ):
            errors["max_referrals"] = "The maximum is below the minimum."
        if self.hold_days is not None and self.hold_days > MAX_HOLD_DAYS:
            errors["hold_days"] = f"A hold is {MAX_HOLD_DAYS} days at most."
        if self.payout_minimum is not None and self.payout_minimum < 0:
            errors["payout_minimum"] = "The payout minimum is zero or more."
        if errors:
            raise ValidationError(errors)


class Rule(models.Model):
    class RewardType(models.TextChoices):
        PERCENT = "percent", "percentage of each qualifying expense"
        FIXED = "fixed", "fixed amount per qualifying expense"

    class Schedule(models.TextChoices):
        MONTH = "month", "month"
        QUARTER = "quarter", "quarter"
        YEAR = "year", "year"
        PROGRAM = "program", "the whole program"

    program = models.ForeignKey(ReferralProgram, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=200)
    reward_type = models.CharField(
        max_length=10, choices=RewardType.choices, default=RewardType.PERCENT
    )
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    schedule = models.CharField(max_length=10, choices=Schedule.choices, default=Schedule.MONTH)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0)
                & (Q(reward_type="fixed") | Q(reward_type="percent", amount__lte=100)),
                name="rule_amount_in_range",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def description(self) -> str:
        """What the rule pays, in words (which expenses earn, how much, in which currency)."""
        from referrals.reward_types import reward_type_of

        return reward_type_of(self.reward_type).describe(self)

    def clean(self) -> None:
        from referrals.reward_types import reward_type_of

        if self.reward_type in self.RewardType.values and self.amount is not None:
            reward_type_of(self.reward_type).validate(self)


class RuleConditionGroup(models.Model):
    """Conditions in one group are OR-ed; groups are AND-ed with each other."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="groups", db_index=False)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "name"], name="rule_condition_group_unique_name"
            )
        ]

    def __str__(self) -> str:
        return self.name


class RuleCondition(GroupedCondition, models.Model):
    class Type(models.TextChoices):
        NONE = "0", "no conditions"
        REFERRAL_SALES = "1", "referral's sales volume"
        REFERRAL_SERVICES = "2", "number of services purchased by the referral"
        PARTNER_REFERRALS = "3", "number of referrals brought by the referrer"
        ALL_REFERRALS_SALES = "4", "total sales volume of all referrals"

    group_owner = "rule"

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="conditions")
    ctype = models.CharField("condition", max_length=1, choices=Type.choices)
    orderperiods = models.JSONField("order periods", default=list, blank=True)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GE)
    amount_ctype_1 = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, null=True, blank=True
    )
    amount_ctype_4 = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, null=True, blank=True
    )
    item_count = models.PositiveIntegerField(null=True, blank=True)
    referral_count = models.PositiveIntegerField(null=True, blank=True)
    group = models.ForeignKey(
        RuleConditionGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conditions",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(amount_ctype_1__isnull=True) | Q(amount_ctype_1__gte=0))
                & (Q(amount_ctype_4__isnull=True) | Q(amount_ctype_4__gte=0)),
                name="rule_condition_amounts_gte_0",
            )
        ]

    def __str__(self) -> str:
        from referrals.conditions import condition_type_of

        return condition_type_of(self.ctype).describe(self)

    def clean(self) -> None:
        from referrals.conditions import condition_type_of

        if self.ctype in self.Type.values:
            condition_type_of(self.ctype).validate(self)
        if errors := self.group_error():
            raise ValidationError(errors)


class Referral(models.Model):
    """A referred client attached to the partner who brought them; a client is referred once."""

    class Source(models.TextChoices):
        PROMOCODE = "promocode", "promo code"
        LINK = "link", "link"
        MANUAL = "manual", "by hand"

    program = models.ForeignKey(ReferralProgram, on_delete=models.PROTECT, related_name="referrals")
    partner = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="referrals_made")
    client = models.OneToOneField(Client, on_delete=models.PROTECT, related_name="referral")
    source = models.CharField(max_length=10, choices=Source.choices)
    via = models.CharField(
        max_length=300,
        blank=True,
        help_text="The code the client entered or the link they followed.",
    )
    joined_at = models.DateTimeField(
        default=timezone.now, help_text="Rewards accrue on expenses from this moment on."
    )
    address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The address the client came from (a link's visitor)."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(partner=F("client")), name="referral_not_self")
        ]

    def __str__(self) -> str:
        return f"{self.client} via {self.partner}"


class Partnership(models.Model):
    """A client enrolled as a partner of a program, with the code and link they hand out."""

    program = models.ForeignKey(
        ReferralProgram, on_delete=models.CASCADE, related_name="partnerships", db_index=False
    )
    partner = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="partnerships")
    code = models.CharField(max_length=120, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    payout_details = models.CharField(
        max_length=200,
        blank=True,
        help_text="Where payouts go, e.g. an IBAN or a payment e-mail (masked in lists).",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "partner"], name="partnership_once_per_program"
            )
        ]

    def __str__(self) -> str:
        return f"{self.partner} in {self.program}"

    @property
    def link(self) -> str:
        return partner_link(self.program, self.partner_id)


def partner_link(program: ReferralProgram, partner_id: int) -> str:
    if not program.url:
        return ""
    joiner = "&" if "?" in program.url else "?"
    return f"{program.url}{joiner}from={partner_id}"


def partner_code(program: ReferralProgram, partner_id: int) -> str:
    return program.promocode.replace(PARTNER_PLACEHOLDER, str(partner_id))


class LinkClick(models.Model):
    """A visitor followed a partner's link; their registration later attaches them to the partner."""

    program = models.ForeignKey(ReferralProgram, on_delete=models.CASCADE, related_name="clicks")
    partner = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="link_clicks")
    visitor = models.CharField(
        max_length=64,
        help_text="The visitor's id, e.g. the site's cookie, kept until registration.",
    )
    clicked_at = models.DateTimeField(default=timezone.now)
    address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The visitor's address when they clicked."
    )
    referral = models.ForeignKey(
        Referral, null=True, blank=True, on_delete=models.SET_NULL, related_name="clicks"
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["visitor", "clicked_at"])]

    def __str__(self) -> str:
        return f"{self.visitor} via {self.partner}"


class AttachmentRefusal(models.Model):
    """An attachment a fraud screen refused, kept for the operator (append-only)."""

    class Screen(models.TextChoices):
        SELF = "self", "the partner themselves"
        SAME_EMAIL = "same_email", "the partner's own e-mail address"
        RESTRICTED_PARTNER = "restricted_partner", "the partner is in the restricted group"
        ADDRESS_LIMIT = "address_limit", "too many link attachments from one address"

    program = models.ForeignKey(
        ReferralProgram, on_delete=models.CASCADE, related_name="attachment_refusals"
    )
    partner = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="attachment_refusals", db_index=False
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    screen = models.CharField(max_length=20, choices=Screen.choices)
    reason = models.CharField(max_length=300)
    source = models.CharField(max_length=10, choices=Referral.Source.choices)
    address = models.GenericIPAddressField(null=True, blank=True)
    refused_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["partner", "program"])]

    def __str__(self) -> str:
        return f"{self.client} via {self.partner}: {self.reason}"


class PayoutBatch(models.Model):
    """Payouts made by one payment, under one reference: what a bank's bulk upload takes."""

    reference = models.CharField(
        max_length=100,
        unique=True,
        help_text="The payment's reference, e.g. the bank transfer's or batch's id.",
    )
    created_at = models.DateTimeField("paid at", default=timezone.now)
    created_by = models.CharField(max_length=150, help_text="Who paid (the user name).")

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "payout batches"
        constraints = [
            models.CheckConstraint(condition=~Q(reference=""), name="payoutbatch_has_reference")
        ]

    def __str__(self) -> str:
        return self.reference


class Payout(models.Model):
    """Rewards paid out to a partner at once, in one currency, as part of a batch.

    A payout never changes but for its status, which moves forward only: `pending` (written, in
    the batch's file) -> `sent` or `failed`, and `sent` -> `failed` (a transfer that bounced). A
    failed payout gives its rewards back: they are payable again (database triggers, migration
    0009).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending (in the batch's file)"
        SENT = "sent", "sent"
        FAILED = "failed", "failed (its rewards are payable again)"

    batch = models.ForeignKey(PayoutBatch, on_delete=models.PROTECT, related_name="payouts")
    program = models.ForeignKey(ReferralProgram, on_delete=models.PROTECT, related_name="payouts")
    partner = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="payouts")
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField("paid at", default=timezone.now)
    paid_by = models.CharField(max_length=150, help_text="Who paid (the user name).")
    # The details the payout was sent to, as they were when it was made (the file shows them).
    payout_details = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    rewards_count = models.PositiveIntegerField(
        "rewards", default=0, help_text="How many ledger rows it paid (also once it failed)."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payout_amount_gte_0"),
        ]

    def __str__(self) -> str:
        shown = money_format(self.amount, self.currency.iso, minor_units=self.currency.minor_units)
        return f"{shown} to {self.partner}"

    @property
    def reference(self) -> str:
        return self.batch.reference


class Reward(models.Model):
    """A ledger row: what a rule earned a client (the partner, or the referred client) on one
    expense of a referral. Rows are written by accrual only and are history: never deleted, and
    their money never edited (database triggers, see migration 0007); corrections are new rows.

    Accrual writes a million rows at a time, so the ledger carries only what guards money or
    what a read cannot do without: the primary key, the unique (rule, expense, role) key that
    makes re-runs add nothing, the CHECK on the amount, and an index on paid rows' payout.
    Its references are not row-by-row foreign-key constraints (they were ~70% of accrual's time):
    every row is built by accrual's INSERT ... SELECT from the very rows it names, rows never
    change but for their payout (checked by a trigger when set), and triggers on the referenced
    tables refuse to delete an expense, rule or referral that a reward names; a reward's client and
    currency are its referral's and its expense's, which their own foreign keys keep
    (tests/referrals/test_ledger.py proves all of it). Reads reach a partner's rewards
    through their referrals' expenses (indexed), not by an index on the ledger.
    """

    class Role(models.TextChoices):
        REFERRER = "referrer", "the referrer"
        REFEREE = "referee", "the referred client"

    # The credited client: the partner for a referrer's reward, the referred client for theirs.
    beneficiary = models.ForeignKey(
        Client,
        on_delete=models.PROTECT,
        related_name="rewards",
        db_index=False,
        db_constraint=False,
    )
    referral = models.ForeignKey(
        Referral,
        on_delete=models.PROTECT,
        related_name="rewards",
        db_index=False,
        db_constraint=False,
    )
    rule = models.ForeignKey(
        Rule, on_delete=models.PROTECT, related_name="rewards", db_index=False, db_constraint=False
    )
    expense = models.ForeignKey(
        Expense,
        on_delete=models.PROTECT,
        related_name="rewards",
        db_index=False,
        db_constraint=False,
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.REFERRER)
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    # Always the expense's currency: a fixed reward is paid only on expenses in the program's.
    currency = models.ForeignKey(
        Currency, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=10, choices=RewardKind.choices, default=RewardKind.CASH)
    created_at = models.DateTimeField("accrued at", default=timezone.now)
    # Checked by a trigger that runs only for a row naming a payout (accrual writes none).
    payout = models.ForeignKey(
        Payout,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rewards",
        db_index=False,
        db_constraint=False,
    )
    # When the reward may be paid: the earning purchase's time plus the program's hold_days
    # then. A reversing row takes its reward's, so it is held, payable or deducted with it.
    payable_at = models.DateTimeField()
    # A reversing row (negative, on a refund) names the reward it gives back (part of); a
    # trigger checks it agrees with that reward and never reverses more than it (migration 0009).
    reverses = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversals",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "expense", "role"], name="reward_once_per_rule_expense"
            ),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True, amount__gte=0)
                | Q(reverses__isnull=False, amount__lt=0),
                name="reward_amount_sign",
            ),
        ]
        indexes = [
            # Only paid rows: accrual writes unpaid ones and never maintains it.
            models.Index(
                fields=["payout"], name="reward_paid_payout", condition=Q(payout__isnull=False)
            ),
            # Only reversing rows: a reward's reversals, read by its state.
            models.Index(
                fields=["reverses"],
                name="reward_reversals",
                condition=Q(reverses__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        shown = money_format(self.amount, self.currency.iso, minor_units=self.currency.minor_units)
        return f"{shown} for {self.beneficiary}"


class RewardState(models.TextChoices):
    """Where a ledger row stands at a moment (referrals.selectors.with_states computes it).

    - `reversed`: a reward given back in whole by refunds (paid before or not);
    - `paid`: in a payout that has not failed (a reversing row: deducted from one);
    - `held`: unpaid, its purchase younger than the program's hold;
    - `payable`: unpaid and due: the next payout takes it (a reversing row: as a deduction).
    The next payout takes every due unpaid row, reversing ones included, and pays their sum.
    """

    HELD = "held", "held"
    PAYABLE = "payable", "payable"
    PAID = "paid", "paid"
    REVERSED = "reversed", "reversed"


class AccrualMark(models.Model):
    """How far accrual has come for one rule (its watermark), so a run reads only what is new.

    Ids, not dates: an expense that arrives late with an old `created_at` still has a new id.
    A run reads the highest committed ids first (see accrual.committed_marks), so an id at or
    below a mark is never still in flight. Changing the rule, its conditions or its program
    resets the mark (`generation` moves on), and the next run re-reads from the start, the
    unique key keeping what was paid.
    """

    rule = models.OneToOneField(
        Rule, on_delete=models.CASCADE, primary_key=True, related_name="accrual_mark"
    )
    # Every expense, referral and service with an id up to these has been accrued.
    expenses_through = models.BigIntegerField(default=0)
    referrals_through = models.BigIntegerField(default=0)
    services_through = models.BigIntegerField(default=0)
    # No reward of the rule is on an expense with a higher id: above it, inserts need no
    # conflict check (the unique key would still refuse a duplicate).
    rewards_through = models.BigIntegerField(default=0)
    # Refunds up to this id have reversed the rule's rewards while the rule accrued nothing new
    # (it, or its program, switched off): its rewards are still given back on refunds.
    refunds_through = models.BigIntegerField(default=0)
    generation = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(expenses_through__gte=0)
                & Q(referrals_through__gte=0)
                & Q(services_through__gte=0)
                & Q(rewards_through__gte=0)
                & Q(refunds_through__gte=0),
                name="accrualmark_ids_in_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule}: expenses through #{self.expenses_through}"
