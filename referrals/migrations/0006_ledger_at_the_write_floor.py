"""The ledger at the write's floor, payouts with who and a reference, one title per provider.

- Reward.partner is the credited client, who may be the referred one: it becomes `beneficiary`,
  and the old `beneficiary` (referrer or referee) becomes `role`.
- The ledger's references stop being row-by-row foreign-key constraints and lose the indexes no
  read needs (migration 0007 adds the triggers that guard the references instead).
- Accrual keeps a watermark per rule (AccrualMark).
- Payouts record who paid and a reference; older payouts get "(not recorded)" and PAYOUT-<id>.
- A program's title is unique per provider, in any letter case; older duplicates get " (id N)".
- Referral keeps how the client came (`via`); its first and last purchase are read from the
  expenses instead of being copied on every expense.
"""

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.db import migrations, models


def payouts_recorded(apps, schema_editor):
    Payout = apps.get_model("referrals", "Payout")
    for payout in Payout.objects.filter(reference=""):
        payout.reference = f"PAYOUT-{payout.pk}"
        payout.paid_by = "(not recorded)"
        payout.save(update_fields=["reference", "paid_by"])


def titles_unique(apps, schema_editor):
    ReferralProgram = apps.get_model("referrals", "ReferralProgram")
    seen = set()
    for program in ReferralProgram.objects.order_by("pk"):
        key = (program.provider_id, program.name.lower())
        if key in seen:
            program.name = f"{program.name[:180]} (id {program.pk})"
            program.save(update_fields=["name"])
        seen.add((program.provider_id, program.name.lower()))


def sources_known(apps, schema_editor):
    Referral = apps.get_model("referrals", "Referral")
    Referral.objects.filter(source="default").update(source="manual")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("referrals", "0005_partnerships_and_clicks"),
    ]

    operations = [
        # Reward: names for what they are ------------------------------------------------------
        migrations.RemoveConstraint(model_name="reward", name="reward_once_per_rule_expense"),
        migrations.RemoveIndex(model_name="reward", name="referrals_r_partner_dd8457_idx"),
        migrations.RenameField(model_name="reward", old_name="beneficiary", new_name="role"),
        migrations.RenameField(model_name="reward", old_name="partner", new_name="beneficiary"),
        # Reward: references guarded by triggers, indexes only where a read needs them ----------
        migrations.AlterField(
            model_name="reward",
            name="beneficiary",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rewards",
                to="billing.client",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="referral",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rewards",
                to="referrals.referral",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="rule",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rewards",
                to="referrals.rule",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="expense",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rewards",
                to="billing.expense",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="currency",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="billing.currency",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="payout",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rewards",
                to="referrals.payout",
            ),
        ),
        migrations.AlterField(
            model_name="reward",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="accrued at"),
        ),
        migrations.AddIndex(
            model_name="reward",
            index=models.Index(
                condition=models.Q(("payout__isnull", False)),
                fields=["payout"],
                name="reward_paid_payout",
            ),
        ),
        migrations.AddConstraint(
            model_name="reward",
            constraint=models.UniqueConstraint(
                fields=("rule", "expense", "role"), name="reward_once_per_rule_expense"
            ),
        ),
        # The watermark ------------------------------------------------------------------------
        migrations.CreateModel(
            name="AccrualMark",
            fields=[
                (
                    "rule",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="accrual_mark",
                        serialize=False,
                        to="referrals.rule",
                    ),
                ),
                ("expenses_through", models.BigIntegerField(default=0)),
                ("referrals_through", models.BigIntegerField(default=0)),
                ("services_through", models.BigIntegerField(default=0)),
                ("rewards_through", models.BigIntegerField(default=0)),
                ("generation", models.PositiveIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("expenses_through__gte", 0),
                            ("referrals_through__gte", 0),
                            ("services_through__gte", 0),
                            ("rewards_through__gte", 0),
                        ),
                        name="accrualmark_ids_gte_0",
                    )
                ],
            },
        ),
        # Payouts: who paid, and a reference -------------------------------------------------
        migrations.AddField(
            model_name="payout",
            name="paid_by",
            field=models.CharField(
                default="", help_text="Who paid (the user name).", max_length=150
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="payout",
            name="reference",
            field=models.CharField(
                default="",
                help_text="The payout's reference, e.g. the bank transfer's or batch's id.",
                max_length=100,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(payouts_recorded, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="payout",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="paid at"),
        ),
        migrations.AddConstraint(
            model_name="payout",
            constraint=models.CheckConstraint(
                condition=models.Q(("reference", ""), _negated=True), name="payout_has_reference"
            ),
        ),
        # Referrals: how they came; purchases read from the expenses -----------------------------
        migrations.RunPython(sources_known, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="referral",
            name="source",
            field=models.CharField(
                choices=[("promocode", "promo code"), ("link", "link"), ("manual", "by hand")],
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="referral",
            name="via",
            field=models.CharField(
                blank=True,
                help_text="The code the client entered or the link they followed.",
                max_length=300,
            ),
        ),
        migrations.AlterField(
            model_name="referral",
            name="joined_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="Rewards accrue on expenses from this moment on.",
            ),
        ),
        migrations.RemoveField(model_name="referral", name="first_purchase_at"),
        migrations.RemoveField(model_name="referral", name="last_purchase_at"),
        # One title per provider ---------------------------------------------------------------
        migrations.RunPython(titles_unique, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="referralprogram",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"),
                models.F("provider"),
                name="referralprogram_unique_title",
                violation_error_code="unique",
                violation_error_message="A program with this title exists already.",
            ),
        ),
    ]
