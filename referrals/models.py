"""Referral programs in BILLmanager's vocabulary, with the fields DigiPay's door maps onto."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Expense, Provider
from common.comparison import SYMBOLS, Comparison
from common.groups import GroupedCondition
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

PARTNER_PLACEHOLDER = "@ID@"


class RewardKind(models.TextChoices):
    CASH = "cash", "cash"
    POINTS = "points", "points"


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

    class Meta:
        ordering = ["id"]
        constraints = [
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
        ]

    def __str__(self) -> str:
        return self.name

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

    def clean(self) -> None:
        if (
            self.reward_type == self.RewardType.PERCENT
            and self.amount is not None
            and self.amount > 100
        ):
            raise ValidationError({"amount": "A percentage is 100 at most."})


class RuleConditionGroup(models.Model):
    """Conditions in one group are OR-ed; groups are AND-ed with each other."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="groups")
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

    # The one amount field each condition type reads.
    AMOUNT_FIELD: dict[str, str] = {
        Type.REFERRAL_SALES: "amount_ctype_1",
        Type.REFERRAL_SERVICES: "item_count",
        Type.PARTNER_REFERRALS: "referral_count",
        Type.ALL_REFERRALS_SALES: "amount_ctype_4",
    }

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
        field = self.AMOUNT_FIELD.get(self.ctype)
        if not field:
            return self.get_ctype_display()
        op = SYMBOLS[self.comparison]
        value = getattr(self, field)
        shown = format(value.normalize(), "f") if hasattr(value, "normalize") else value
        return f"{self.get_ctype_display()} {op} {shown}"

    def clean(self) -> None:
        field = self.AMOUNT_FIELD.get(self.ctype)
        if field and getattr(self, field) is None:
            raise ValidationError({field: "Required for this condition type."})
        if errors := self.group_error():
            raise ValidationError(errors)


class Referral(models.Model):
    """A referred client attached to the partner who brought them; a client is referred once."""

    class Source(models.TextChoices):
        PROMOCODE = "promocode", "promo code"
        LINK = "link", "link"
        DEFAULT = "default", "enrolled by default"

    program = models.ForeignKey(ReferralProgram, on_delete=models.PROTECT, related_name="referrals")
    partner = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="referrals_made")
    client = models.OneToOneField(Client, on_delete=models.PROTECT, related_name="referral")
    source = models.CharField(max_length=10, choices=Source.choices)
    joined_at = models.DateTimeField(default=timezone.now)
    first_purchase_at = models.DateTimeField(null=True, blank=True)
    last_purchase_at = models.DateTimeField(null=True, blank=True)

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
        ReferralProgram, on_delete=models.CASCADE, related_name="partnerships"
    )
    partner = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="partnerships")
    code = models.CharField(max_length=120, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)

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
    referral = models.ForeignKey(
        Referral, null=True, blank=True, on_delete=models.SET_NULL, related_name="clicks"
    )

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["visitor", "clicked_at"])]

    def __str__(self) -> str:
        return f"{self.visitor} via {self.partner}"


class Payout(models.Model):
    """Rewards paid out to a partner at once."""

    program = models.ForeignKey(ReferralProgram, on_delete=models.PROTECT, related_name="payouts")
    partner = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="payouts")
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payout_amount_gte_0")
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} to {self.partner}"


class Reward(models.Model):
    """A ledger row: what a rule earned a client (the partner, or the referred client) on one
    expense of a referral."""

    class Beneficiary(models.TextChoices):
        REFERRER = "referrer", "the referrer"
        REFEREE = "referee", "the referred client"

    # The credited client: the partner for a referrer's reward, the referred client for theirs.
    # The unique (rule, expense, beneficiary) index starts with rule and (partner, payout) with
    # partner, so neither needs an index of its own; accrual writes a million rows at a time.
    partner = models.ForeignKey(
        Client, on_delete=models.PROTECT, related_name="rewards", db_index=False
    )
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="rewards")
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="rewards", db_index=False)
    expense = models.ForeignKey(Expense, on_delete=models.PROTECT, related_name="rewards")
    beneficiary = models.CharField(
        max_length=10, choices=Beneficiary.choices, default=Beneficiary.REFERRER
    )
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.ForeignKey(
        Currency, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=10, choices=RewardKind.choices, default=RewardKind.CASH)
    created_at = models.DateTimeField(default=timezone.now)
    payout = models.ForeignKey(
        Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="rewards"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "expense", "beneficiary"], name="reward_once_per_rule_expense"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="reward_amount_gte_0"),
        ]
        indexes = [models.Index(fields=["partner", "payout"])]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for {self.partner}"
