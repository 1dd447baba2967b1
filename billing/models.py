"""The substrate promotions and referral rules are evaluated against."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS, money_format


class Currency(models.Model):
    name = models.CharField(max_length=100)
    iso = models.CharField("ISO code", max_length=32, unique=True)
    minor_units = models.PositiveSmallIntegerField(default=2)

    class Meta:
        verbose_name_plural = "currencies"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(minor_units__lte=8), name="currency_minor_units_le_8"
            )
        ]

    def __str__(self) -> str:
        return self.iso


class Provider(models.Model):
    """A BILLmanager "project": the company that sells tariffs and runs promotions."""

    name = models.CharField(max_length=200, unique=True)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT)
    max_discount = models.DecimalField(
        "maximum discount, %",
        max_digits=7,
        decimal_places=4,
        default=100,
        help_text="The most all promotions together take off a line, in percent of its price.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_discount__gte=0) & Q(max_discount__lte=100),
                name="provider_max_discount_0_100",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ClientGroup(models.Model):
    name = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Client(models.Model):
    """A BILLmanager "account": the customer who orders services."""

    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="clients")
    registration_date = models.DateTimeField(default=timezone.now)
    groups = models.ManyToManyField(ClientGroup, blank=True, related_name="clients")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Tariff(models.Model):
    """A BILLmanager "pricelist": a plan a provider sells."""

    class Charge(models.TextChoices):
        DAILY = "daily", "daily"
        MONTHLY = "monthly", "monthly"

    name = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="tariffs")
    price = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, default=0
    )
    charge = models.CharField(max_length=10, choices=Charge.choices, default=Charge.MONTHLY)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="tariff_price_gte_0")]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """A client's ordered service: an instance of a tariff."""

    class Status(models.TextChoices):
        ORDERED = "ordered", "ordered"
        ACTIVE = "active", "active"
        SUSPENDED = "suspended", "suspended"
        CLOSED = "closed", "closed"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="services")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="services")
    period = models.PositiveSmallIntegerField("period, months", default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ORDERED)
    paid = models.BooleanField(default=False)
    opened_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(period__gte=1), name="service_period_gte_1"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gte=models.F("opened_at")),
                name="service_expires_after_open",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.tariff}"


class Expense(models.Model):
    """A charge to a client: what expense conditions and referral rewards count.

    A refund is a negative expense that names the charge it refunds (`refunds`); the charge keeps
    how much of it has been refunded so far (`refunded`), moved only by a guarded UPDATE, so
    refunds never add up to more than the charge (billing.services.expense_create), and the
    database refuses a counter past the amount whatever writes it.
    """

    client = models.ForeignKey(
        Client, on_delete=models.PROTECT, related_name="expenses", db_index=False
    )
    service = models.ForeignKey(
        Service, null=True, blank=True, on_delete=models.PROTECT, related_name="expenses"
    )
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    refunds = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refund_set",
        db_index=False,  # the partial index below: most expenses refund nothing
        help_text="The charge this refund gives money back on (a refund's amount is negative).",
    )
    refunded = models.DecimalField(
        "refunded so far",
        max_digits=MONEY_MAX_DIGITS,
        decimal_places=MONEY_DECIMAL_PLACES,
        default=0,
        db_default=0,
        editable=False,
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["client", "created_at"]),
            # Refunds only (most expenses are charges): the refunds of a charge, and the
            # refunds in a range of ids (what accrual reverses rewards on).
            models.Index(
                fields=["refunds", "id"],
                name="expense_refunds",
                condition=Q(refunds__isnull=False),
            ),
            models.Index(
                fields=["id"], name="expense_refund_ids", condition=Q(refunds__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(refunds__isnull=True) | Q(amount__lt=0),
                name="expense_refund_is_negative",
            ),
            models.CheckConstraint(
                condition=Q(refunded=0) | Q(refunded__gt=0, refunded__lte=models.F("amount")),
                name="expense_refunded_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return money_format(self.amount, self.currency.iso, minor_units=self.currency.minor_units)
