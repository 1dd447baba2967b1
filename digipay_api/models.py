"""The DigiPay tenant (a company, which is a billing provider), its API tokens, and the 32-hex
public ids DigiPay clients see for currencies and referral programs."""

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from billing.models import Currency, Provider
from referrals.models import ReferralProgram, Rule

HEX32 = RegexValidator(r"^[0-9a-f]{32}\Z", "A public id is 32 lowercase hex characters.")


def new_public_id() -> str:
    return uuid.uuid4().hex


def public_id_field() -> models.CharField:
    return models.CharField(
        "public id", max_length=32, unique=True, default=new_public_id, validators=[HEX32]
    )


class Company(models.Model):
    """A DigiPay company: the CompanyID header. It sells as its billing provider."""

    public_id = public_id_field()
    name = models.CharField(max_length=200, unique=True)
    provider = models.OneToOneField(
        Provider, on_delete=models.PROTECT, related_name="digipay_company"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class CompanyCurrency(models.Model):
    """A currency as a company knows it: the request's `currency_id`."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="currencies")
    public_id = public_id_field()
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name_plural = "company currencies"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "currency"], name="digipay_company_currency_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.currency} ({self.public_id})"


class ApiToken(models.Model):
    """A company's key for `Authorization: Token KEY`. Only its SHA-256 is kept."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="tokens")
    key_hash = models.CharField("SHA-256 of the key", max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=4, editable=False, help_text="The key's first characters, to tell keys apart."
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.company}"

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None


class DigiPayProgram(models.Model):
    """A referral program as DigiPay addresses it: its `referral_program_id`, and the rule that
    holds its `referral_condition`. The program itself is a referrals.ReferralProgram."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="programs")
    program = models.OneToOneField(
        ReferralProgram, on_delete=models.CASCADE, related_name="digipay"
    )
    public_id = public_id_field()
    rule = models.OneToOneField(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="digipay_program"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "DigiPay referral program"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.program})"
