"""Money that flows back, step 2: existing rows get the new columns' values.

- A reward earned before holds existed was payable at once: payable at its purchase's time.
- Payouts made under one reference become one batch (its time the first payout's, by whoever made
  that one); each payout counts the rewards it paid. Payouts made so far are `sent` (they were
  confirmed as paid when made).
"""

from django.db import migrations
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def fill(apps, schema_editor):
    Reward = apps.get_model("referrals", "Reward")
    Payout = apps.get_model("referrals", "Payout")
    PayoutBatch = apps.get_model("referrals", "PayoutBatch")
    Expense = apps.get_model("billing", "Expense")
    Reward.objects.filter(payable_at__isnull=True).update(
        payable_at=Subquery(Expense.objects.filter(pk=OuterRef("expense_id")).values("created_at"))
    )
    batches = {}
    for payout in Payout.objects.order_by("created_at", "pk"):
        batch = batches.get(payout.reference)
        if batch is None:
            batch = batches[payout.reference] = PayoutBatch.objects.create(
                reference=payout.reference,
                created_at=payout.created_at,
                created_by=payout.paid_by,
            )
        payout.batch = batch
        payout.status = "sent"
        payout.status_changed_at = payout.created_at
        payout.save(update_fields=["batch", "status", "status_changed_at"])
    counts = Reward.objects.filter(payout=OuterRef("pk")).order_by().values("payout")
    Payout.objects.update(
        rewards_count=Coalesce(Subquery(counts.annotate(n=Count("pk")).values("n")[:1]), 0)
    )


class Migration(migrations.Migration):
    dependencies = [("referrals", "0008_money_flows_back")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
