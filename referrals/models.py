from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from billing.models import Client, Provider


class ReferralProgram(models.Model):
    """A provider's referral program; promotion conditions of type `affiliate` point here.

    The rules, attribution and rewards arrive with the referrals issue.
    """

    provider = models.ForeignKey(
        Provider, on_delete=models.PROTECT, related_name="referral_programs"
    )
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


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

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(partner=F("client")), name="referral_not_self")
        ]

    def __str__(self) -> str:
        return f"{self.client} via {self.partner}"
