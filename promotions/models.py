"""Promotions, their discounts, conditions and promo codes, in BILLmanager's vocabulary."""

import datetime

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Provider, Service, Tariff
from common.comparison import Comparison
from common.groups import GroupedCondition
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from common.periods import period_length_error
from referrals.models import ReferralProgram

PRIORITY_LIMIT = 1_000_000


class PeriodType(models.TextChoices):
    DAY = "day", "day"
    MONTH = "month", "month"
    YEAR = "year", "year"


class PromotionQuerySet(models.QuerySet):
    @staticmethod
    def status_q(status: str, day: datetime.date) -> Q:
        """The promotions whose status on `day` is `status`, as a filter the database runs; the
        one definition of planned / active ("live") / expired / archived, beside `status_on`."""
        kept = Q(archived=False)
        return {
            Promotion.Status.ARCHIVED: Q(archived=True),
            Promotion.Status.PLANNED: kept & Q(fromdate__gt=day),
            Promotion.Status.EXPIRED: kept & Q(todate__lt=day),
            Promotion.Status.ACTIVE: kept
            & Q(fromdate__lte=day)
            & (Q(todate__isnull=True) | Q(todate__gte=day)),
        }[status]

    def with_status(self, status: str, day: datetime.date | None = None) -> "PromotionQuerySet":
        return self.filter(self.status_q(status, day or timezone.localdate()))

    def live(self, day: datetime.date | None = None) -> "PromotionQuerySet":
        """The promotions that apply to orders placed on `day` (today by default)."""
        return self.with_status(Promotion.Status.ACTIVE, day)


class Promotion(models.Model):
    name = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="promotions")
    fromdate = models.DateField("start date")
    todate = models.DateField("end date", null=True, blank=True, help_text="Included.")
    archived = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Combine(models.TextChoices):
        EXCLUSIVE = "exclusive", "exclusive: nothing else applies to the line"
        COMBINABLE = "combinable", "combinable with the promotions below it"

    class BudgetPeriod(models.TextChoices):
        TOTAL = "total", "in total"
        DAY = "day", "per day"
        MONTH = "month", "per month"

    priority = models.IntegerField(
        default=0,
        validators=[MinValueValidator(-PRIORITY_LIMIT), MaxValueValidator(PRIORITY_LIMIT)],
        help_text="Higher goes first on a line.",
    )
    combine = models.CharField(max_length=10, choices=Combine.choices, default=Combine.EXCLUSIVE)
    budget = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="The most discount the promotion gives per budget period, in the provider's "
        "currency; empty: no budget.",
    )
    budget_period = models.CharField(
        max_length=5, choices=BudgetPeriod.choices, default=BudgetPeriod.TOTAL
    )
    client_budget = models.DecimalField(
        "budget per client",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="The most one client receives from the promotion per budget period.",
    )

    objects = PromotionQuerySet.as_manager()

    class Status(models.TextChoices):
        PLANNED = "planned", "planned"
        ACTIVE = "active", "active"
        EXPIRED = "expired", "expired"
        ARCHIVED = "archived", "archived"

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(todate__isnull=True) | Q(todate__gte=F("fromdate")),
                name="promotion_fromdate_le_todate",
            ),
            models.CheckConstraint(
                condition=Q(budget__isnull=True) | Q(budget__gte=0), name="promotion_budget_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(client_budget__isnull=True) | Q(client_budget__gte=0),
                name="promotion_client_budget_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-PRIORITY_LIMIT) & Q(priority__lte=PRIORITY_LIMIT),
                name="promotion_priority_in_range",
            ),
            models.CheckConstraint(
                condition=Q(combine__in=["exclusive", "combinable"]),
                name="promotion_combine_known",
            ),
            models.CheckConstraint(
                condition=Q(budget_period__in=["total", "day", "month"]),
                name="promotion_budget_period_known",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.fromdate and self.todate and self.todate < self.fromdate:
            raise ValidationError({"todate": "The end date is before the start date."})

    def status_on(self, day: datetime.date | None = None) -> "Promotion.Status":
        """This promotion's status on `day`, by the rules `PromotionQuerySet.status_q` filters by."""
        day = day or timezone.localdate()
        if self.archived:
            return self.Status.ARCHIVED
        if day < self.fromdate:
            return self.Status.PLANNED
        if self.todate is not None and day > self.todate:
            return self.Status.EXPIRED
        return self.Status.ACTIVE

    @property
    def status(self) -> "Promotion.Status":
        return self.status_on()

    @property
    def has_budget(self) -> bool:
        return self.budget is not None or self.client_budget is not None


class Discount(models.Model):
    class Type(models.TextChoices):
        ALL = "all", "every tariff of the provider"
        PRICELIST = "pricelist", "selected tariffs"

    class ActionType(models.TextChoices):
        ORDER = "order", "new orders"
        PROLONG = "prolong", "renewals"
        ALL = "all", "new orders and renewals"

    class Validity(models.TextChoices):
        UNLIMITED = "unlimited", "unlimited"
        MONTHS = "months", "months from the order"

    class ValueType(models.TextChoices):
        PERCENT = "percent", "a percentage off"
        AMOUNT = "amount", "a fixed amount off"
        PRICE = "price", "a fixed final price"

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="discounts")
    type = models.CharField("discount type", max_length=10, choices=Type.choices, default=Type.ALL)
    pricelist = models.ManyToManyField(Tariff, blank=True, related_name="discounts")
    valuetype = models.CharField(
        "value type", max_length=10, choices=ValueType.choices, default=ValueType.PERCENT
    )
    percentage = models.DecimalField(
        "discount, %", max_digits=7, decimal_places=4, null=True, blank=True
    )
    amount = models.DecimalField(
        "amount",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="In the provider's currency: the amount off (amount) or the final price (price).",
    )
    actiontype = models.CharField(
        "type", max_length=10, choices=ActionType.choices, default=ActionType.ALL
    )
    period = models.JSONField(
        "order periods", default=list, blank=True, help_text="Months; empty means every period."
    )
    validity = models.CharField(
        "validity period", max_length=10, choices=Validity.choices, default=Validity.UNLIMITED
    )
    validitylength = models.PositiveSmallIntegerField(
        "validity period, months", null=True, blank=True
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100),
                name="discount_percentage_0_100",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0), name="discount_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(valuetype="percent", percentage__isnull=False)
                | Q(valuetype__in=["amount", "price"], amount__isnull=False),
                name="discount_value_given",
            ),
            models.CheckConstraint(
                condition=Q(validity="unlimited", validitylength__isnull=True)
                | Q(validity="months", validitylength__gte=1),
                name="discount_validitylength_iff_months",
            ),
        ]

    def __str__(self) -> str:
        scope = "all tariffs" if self.type == self.Type.ALL else "selected tariffs"
        return f"{self.value_text} on {scope}, {self.get_actiontype_display()}{self.periods_text}"

    @property
    def periods_text(self) -> str:
        """`, on orders of 1 or 12 months`; empty when every period qualifies."""
        months = [str(m) for m in sorted(self.period or []) if isinstance(m, int)]
        if not months:
            return ""
        named = months[0] if len(months) == 1 else f"{', '.join(months[:-1])} or {months[-1]}"
        return f", on orders of {named} month{'s' if months != ['1'] else ''}"

    @property
    def value_text(self) -> str:
        if self.valuetype == self.ValueType.PERCENT:
            return f"{format((self.percentage or 0).normalize(), 'f')}%"
        amount = format((self.amount or 0).normalize(), "f")
        return f"{amount} off" if self.valuetype == self.ValueType.AMOUNT else f"price {amount}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if not isinstance(self.period, list) or not all(
            isinstance(p, int) and p >= 1 for p in self.period
        ):
            raise ValidationError(
                {"period": "Order periods are whole numbers of months, 1 or more."}
            )
        if self.validity == self.Validity.MONTHS and not self.validitylength:
            raise ValidationError({"validitylength": "Give the validity length in months."})
        if self.valuetype == self.ValueType.PERCENT:
            if self.percentage is None:
                raise ValidationError({"percentage": "Give the percentage off."})
            self.amount = None
        elif self.valuetype in (self.ValueType.AMOUNT, self.ValueType.PRICE):
            if self.amount is None:
                raise ValidationError(
                    {
                        "amount": f"Give the {'amount off' if self.valuetype == 'amount' else 'price'}."
                    }
                )
            self.percentage = None
        if self.validity == self.Validity.UNLIMITED and self.validitylength is not None:
            self.validitylength = None


class ConditionGroup(models.Model):
    """Conditions in one group are OR-ed; groups are AND-ed with each other."""

    promotion = models.ForeignKey(
        Promotion, on_delete=models.CASCADE, related_name="groups", db_index=False
    )
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["promotion", "name"], name="condition_group_unique_name"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Condition(GroupedCondition, models.Model):
    """One condition of a promotion. What each type needs, checks and says is its class in
    promotions.engine.conditions (one class per type, behind a registry keyed by `Type`)."""

    class Type(models.TextChoices):
        HAS_TARIFF = "has_tariff", "client has services of a tariff"
        SERVICE_COUNT = "service_count", "number of active services"
        PAID_SERVICES = "paid_services", "number of paid services"
        EXPENSE_SUM = "expense_sum", "expenses within a period"
        REGISTRATION = "registration", "registered within a period"
        ACCOUNT_GROUP = "account_group", "client group"
        AFFILIATE = "affiliate", "referred through a referral program"

    group_owner = "promotion"

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="conditions")
    ctype = models.CharField("condition", max_length=20, choices=Type.choices)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GE)
    pricelist = models.ForeignKey(
        Tariff, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    period = models.JSONField("order periods", default=list, blank=True)
    periodtype = models.CharField(
        "period type", max_length=5, choices=PeriodType.choices, blank=True
    )
    periodlength = models.PositiveIntegerField("period length", null=True, blank=True)
    amount = models.PositiveIntegerField(
        "count",
        null=True,
        blank=True,
        help_text="A number of services (has_tariff, service_count, paid_services), not money.",
    )
    currency = models.ForeignKey(
        Currency, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    summa = models.DecimalField(
        "sum of money",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="Money in the condition's currency (expense_sum).",
    )
    affiliate = models.ForeignKey(
        ReferralProgram, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    account_group = models.ForeignKey(
        ClientGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    group = models.ForeignKey(
        ConditionGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conditions",
        verbose_name="group of conditions",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(summa__isnull=True) | Q(summa__gte=0), name="condition_summa_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.describe()

    def _check(self):
        from promotions.engine.conditions import ConditionSpec, condition_check

        return condition_check(ConditionSpec.of(self))

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from promotions.engine.conditions import ConditionSpec, condition_errors

        provider_id = self.promotion.provider_id if self.promotion_id else None
        errors = condition_errors(ConditionSpec.of(self), provider_id=provider_id)
        errors.update(self.group_error())
        if errors:
            raise ValidationError(errors)

    def describe(self) -> str:
        """A one-line human reading of the condition, as the condition list shows it."""
        return self._check().text


class PromoCode(models.Model):
    class ActiveTimeType(models.TextChoices):
        ALWAYS = "always", "always"
        PERIOD = "period", "between the start and end dates"

    class ExpireType(models.TextChoices):
        UNLIMITED = "unlimited", "unlimited"
        PERIOD = "period", "for a period from first use"

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="promocodes")
    code = models.CharField("promo code", max_length=100, unique=True)
    uselimit = models.PositiveIntegerField("usage limit", null=True, blank=True)
    account_uselimit = models.PositiveIntegerField("usage limit per client", null=True, blank=True)
    onlydigit = models.BooleanField("only digits", default=False)
    active_time_type = models.CharField(
        max_length=10, choices=ActiveTimeType.choices, default=ActiveTimeType.ALWAYS
    )
    fromdate = models.DateField("start date", null=True, blank=True)
    todate = models.DateField("end date", null=True, blank=True)
    expiretype = models.CharField(
        "discount period", max_length=10, choices=ExpireType.choices, default=ExpireType.UNLIMITED
    )
    periodtype = models.CharField(
        "period type", max_length=5, choices=PeriodType.choices, blank=True
    )
    periodlength = models.PositiveIntegerField("period length", null=True, blank=True)
    use_count = models.PositiveIntegerField("usage", default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    # A code's own settings: what a CSV row carries besides the code, what generated codes share,
    # and what a redemption finds unchanged under the code's lock.
    SETTINGS = (
        "uselimit",
        "account_uselimit",
        "active_time_type",
        "fromdate",
        "todate",
        "expiretype",
        "periodtype",
        "periodlength",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(uselimit__isnull=True) | Q(use_count__lte=F("uselimit")),
                name="promocode_use_count_le_uselimit",
            ),
            models.CheckConstraint(
                condition=Q(active_time_type="always")
                | Q(active_time_type="period", fromdate__isnull=False, todate__isnull=False),
                name="promocode_period_has_dates",
            ),
            models.CheckConstraint(
                condition=Q(fromdate__isnull=True)
                | Q(todate__isnull=True)
                | Q(todate__gte=F("fromdate")),
                name="promocode_fromdate_le_todate",
            ),
            models.CheckConstraint(
                condition=Q(expiretype="unlimited")
                | Q(
                    expiretype="period",
                    periodlength__gte=1,
                    periodtype__in=["day", "month", "year"],
                ),
                name="promocode_expire_period_complete",
            ),
        ]
        indexes = [
            # Codes by their start (LIKE 'PREFIX%') whatever the collation: what generation reads
            # to count a template's taken codes. PostgreSQL only; elsewhere a plain index.
            models.Index(
                fields=["code"], name="promocode_code_prefix", opclasses=["varchar_pattern_ops"]
            )
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        if self.active_time_type == self.ActiveTimeType.PERIOD:
            for name in ("fromdate", "todate"):
                if getattr(self, name) is None:
                    errors[name] = "Required when the code is active for a period."
        if self.fromdate and self.todate and self.todate < self.fromdate:
            errors["todate"] = "The end date is before the start date."
        if self.expiretype == self.ExpireType.PERIOD:
            if not self.periodtype:
                errors["periodtype"] = "Required when the discount lasts a period."
            if not self.periodlength:
                errors["periodlength"] = "Required when the discount lasts a period."
            elif too_long := period_length_error(self.periodtype, self.periodlength):
                errors["periodlength"] = too_long
        if self.uselimit is not None and self.use_count > self.uselimit:
            errors["uselimit"] = f"The code has been used {self.use_count} times already."
        if errors:
            raise ValidationError(errors)


class RulesVersion(models.Model):
    """A provider's rules version: a new random token whenever one of its rules changes (every
    rule-changing service draws it in its own transaction), so a compiled rule set is known to be
    current by one indexed read, and a token names exactly one state of the rules."""

    provider = models.OneToOneField(
        Provider, on_delete=models.CASCADE, primary_key=True, related_name="rules_version"
    )
    version = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(version__gte=1), name="rulesversion_version_gte_1")
        ]

    def __str__(self) -> str:
        return f"rules of {self.provider_id}: {self.version}"


class Redemption(models.Model):
    """One order's redemption of a quote: keyed for idempotency, released when the order is undone."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        RELEASED = "released", "released"

    idempotency_key = models.CharField(max_length=255)
    # Who sent the key: keys are the caller's own, per provider ("user:<id>", or "system").
    caller = models.CharField(max_length=64)
    fingerprint = models.CharField(
        max_length=64,
        help_text="Digest of the request, so a reused key with another order is refused.",
    )
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="redemptions")
    # Indexed as the first column of the key's unique constraint.
    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="redemptions", db_index=False
    )
    quote = models.JSONField(help_text="The quote as it was answered when the order was redeemed.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)

    # A new redemption's usages with their codes, as its write made them (the answer shows them
    # without reading them back: promotions.selectors.redemption_usages); None once loaded.
    written_usages: list["PromoCodeUsage"] | None = None

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", released_at__isnull=True)
                | Q(status="released", released_at__isnull=False),
                name="redemption_released_at_iff_released",
            ),
            models.UniqueConstraint(
                fields=["provider", "caller", "idempotency_key"],
                name="redemption_key_once_per_provider_and_caller",
            ),
        ]

    def __str__(self) -> str:
        return f"Redemption {self.pk} ({self.idempotency_key})"


class PromoCodeUsage(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        RELEASED = "released", "released"

    # Indexed as the first column of the (promocode, client, status) index and the constraints.
    promocode = models.ForeignKey(
        PromoCode, on_delete=models.PROTECT, related_name="usages", db_index=False
    )
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="promocode_usages")
    redemption = models.ForeignKey(
        Redemption, null=True, blank=True, on_delete=models.PROTECT, related_name="usages"
    )
    service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.PROTECT, related_name="promocode_usages"
    )
    # The client's n-th live use of this code: unique while active, so a per-client limit
    # cannot be overshot even if two redeemers counted the same number of earlier uses.
    client_slot = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["promocode", "client", "client_slot"],
                condition=Q(status="active"),
                name="usage_unique_live_client_slot",
            ),
            models.UniqueConstraint(
                fields=["promocode", "redemption"], name="usage_unique_code_per_redemption"
            ),
            models.CheckConstraint(condition=Q(client_slot__gte=1), name="usage_client_slot_gte_1"),
        ]
        indexes = [models.Index(fields=["promocode", "client", "status"])]

    def __str__(self) -> str:
        return f"{self.promocode} by {self.client}"


class BudgetSpend(models.Model):
    """What a promotion has given in one budget period ("total", "2026-11-29" or "2026-11"):
    moved only by guarded updates (`spent + x <= budget`) in redemptions, and back by releases."""

    promotion = models.ForeignKey(
        Promotion, on_delete=models.CASCADE, related_name="spends", db_index=False
    )
    period = models.CharField(max_length=10)
    spent = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, default=0
    )

    class Meta:
        ordering = ["promotion", "period"]
        constraints = [
            models.UniqueConstraint(fields=["promotion", "period"], name="budgetspend_once"),
            models.CheckConstraint(condition=Q(spent__gte=0), name="budgetspend_spent_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.promotion_id} {self.period}: {self.spent}"


class ClientBudgetSpend(models.Model):
    """What one client has received from a promotion in one budget period."""

    promotion = models.ForeignKey(
        Promotion, on_delete=models.CASCADE, related_name="client_spends", db_index=False
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="budget_spends")
    period = models.CharField(max_length=10)
    spent = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, default=0
    )

    class Meta:
        ordering = ["promotion", "client", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["promotion", "client", "period"], name="clientbudgetspend_once"
            ),
            models.CheckConstraint(condition=Q(spent__gte=0), name="clientbudgetspend_spent_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.promotion_id} {self.client_id} {self.period}: {self.spent}"


class BudgetCharge(models.Model):
    """A redemption's reservation against a promotion's budget: the period it was taken from, so
    a release gives it back there. Never changed; a released redemption's charges are given back."""

    # Indexed as the first column of the once-per-redemption constraint.
    redemption = models.ForeignKey(
        Redemption, on_delete=models.PROTECT, related_name="budget_charges", db_index=False
    )
    promotion = models.ForeignKey(Promotion, on_delete=models.PROTECT, related_name="charges")
    period = models.CharField(max_length=10)
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    # Whether the promotion's budget, and the client's, were charged (either may be unset).
    budgeted = models.BooleanField(default=True)
    client_budgeted = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["redemption", "promotion"], name="budgetcharge_once_per_redemption"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="budgetcharge_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of promotion {self.promotion_id} in {self.period}"


class BacktestOrder(models.Model):
    """A past order a backtest found the promotion qualifying for: the rows of its CSV. Figures
    of the whole run are on its job (common.Job.result); these rows name the run by its `run`."""

    class Kind(models.TextChoices):
        NEW = "new", "new order"
        RENEWAL = "renewal", "renewal"

    run = models.UUIDField(db_index=True)
    expense = models.ForeignKey("billing.Expense", on_delete=models.PROTECT, related_name="+")
    charged_at = models.DateTimeField()
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    period = models.PositiveSmallIntegerField()
    price = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    discount_alone = models.DecimalField(
        "discount on its own", max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES
    )
    discount = models.DecimalField(
        "discount given",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        help_text="What it gives beside the promotions live then: zero where another wins.",
    )
    winner = models.ForeignKey(
        Promotion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(period__gte=1), name="backtest_period_gte_1"),
            models.CheckConstraint(condition=Q(price__gte=0), name="backtest_price_gte_0"),
            models.CheckConstraint(
                condition=Q(discount_alone__gt=0, discount_alone__lte=F("price")),
                name="backtest_discount_alone_within_price",
            ),
            models.CheckConstraint(
                condition=Q(discount__gte=0, discount__lte=F("price")),
                name="backtest_discount_within_price",
            ),
        ]

    def __str__(self) -> str:
        return f"backtest {self.run}: expense {self.expense_id}"
