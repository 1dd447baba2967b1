from django.db import models

from billing.models import Provider


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
