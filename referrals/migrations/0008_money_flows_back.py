"""Money that flows back (issue 17), step 1: the new fields and tables, beside the old ones.

Refunds reverse rewards (Reward.reverses, negative rows), holds (ReferralProgram.hold_days,
Reward.payable_at), thresholds (payout_minimum), fraud screens (AttachmentRefusal, the
addresses of clicks and referrals, link_attachments_per_address), payout batches with a
reference, a status and the details the payout went to.

The ledger's guards of migration 0007 go first (0010 installs their successors): a payout may
now change its status, and the data step (0009) fills the new columns of existing rows.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# Every guard of migration 0007, on either database (some may be gone already: SQLite drops a
# table's triggers when Django rebuilds the table, as billing 0002 does to billing_expense).
TRIGGERS = {
    "referrals_reward_kept": "referrals_reward",
    "referrals_payout_kept": "referrals_payout",
    "referrals_reward_unchanged": "referrals_reward",
    "referrals_reward_stays_paid": "referrals_reward",
    "referrals_payout_unchanged": "referrals_payout",
    "referrals_reward_payout_exists": "referrals_reward",
    "referrals_reward_payout_set": "referrals_reward",
    "referrals_expense_rewarded": "billing_expense",
    "referrals_rule_rewarded": "referrals_rule",
    "referrals_referral_rewarded": "referrals_referral",
}
FUNCTIONS = [
    "referrals_history_kept",
    "referrals_reward_unchanged",
    "referrals_payout_unchanged",
    "referrals_reward_payout_exists",
    "referrals_rewarded_kept",
]


def guards_drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for name, table in TRIGGERS.items():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)
        for name in FUNCTIONS:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()", params=None)
    elif vendor == "sqlite":
        for name in TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0002_refunds'),
        ('referrals', '0007_ledger_guards'),
    ]

    operations = [
        migrations.RunPython(guards_drop, migrations.RunPython.noop),
        migrations.CreateModel(
            name='AttachmentRefusal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('screen', models.CharField(choices=[('self', 'the partner themselves'), ('same_email', "the partner's own e-mail address"), ('restricted_partner', 'the partner is in the restricted group'), ('address_limit', 'too many link attachments from one address')], max_length=20)),
                ('reason', models.CharField(max_length=300)),
                ('source', models.CharField(choices=[('promocode', 'promo code'), ('link', 'link'), ('manual', 'by hand')], max_length=10)),
                ('address', models.GenericIPAddressField(blank=True, null=True)),
                ('refused_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='PayoutBatch',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reference', models.CharField(help_text="The payment's reference, e.g. the bank transfer's or batch's id.", max_length=100, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='paid at')),
                ('created_by', models.CharField(help_text='Who paid (the user name).', max_length=150)),
            ],
            options={
                'verbose_name_plural': 'payout batches',
                'ordering': ['id'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='reward',
            name='reward_amount_gte_0',
        ),
        migrations.AddField(
            model_name='linkclick',
            name='address',
            field=models.GenericIPAddressField(blank=True, help_text="The visitor's address when they clicked.", null=True),
        ),
        migrations.AddField(
            model_name='partnership',
            name='payout_details',
            field=models.CharField(blank=True, help_text='Where payouts go, e.g. an IBAN or a payment e-mail (masked in lists).', max_length=200),
        ),
        migrations.AddField(
            model_name='payout',
            name='payout_details',
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name='payout',
            name='rewards_count',
            field=models.PositiveIntegerField(default=0, help_text='How many ledger rows it paid (also once it failed).', verbose_name='rewards'),
        ),
        migrations.AddField(
            model_name='payout',
            name='status',
            field=models.CharField(choices=[('pending', "pending (in the batch's file)"), ('sent', 'sent'), ('failed', 'failed (its rewards are payable again)')], default='pending', max_length=10),
        ),
        migrations.AddField(
            model_name='payout',
            name='status_changed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='referral',
            name='address',
            field=models.GenericIPAddressField(blank=True, help_text="The address the client came from (a link's visitor).", null=True),
        ),
        migrations.AddField(
            model_name='referralprogram',
            name='hold_days',
            field=models.PositiveIntegerField(default=0, help_text='A reward becomes payable this many days after the purchase that earned it.', verbose_name='hold, days'),
        ),
        migrations.AddField(
            model_name='referralprogram',
            name='link_attachments_per_address',
            field=models.PositiveIntegerField(blank=True, default=3, help_text="How many clients one partner's link may attach from one address in 24 hours (more are refused as likely fraud); empty: no limit.", null=True, verbose_name='link attachments per address and day'),
        ),
        migrations.AddField(
            model_name='referralprogram',
            name='payout_minimum',
            field=models.DecimalField(decimal_places=4, default=0, help_text="A partner is paid only once their payable balance reaches this amount (in the program's currency; balances in other currencies only need to be above zero).", max_digits=20, verbose_name='payout minimum'),
        ),
        migrations.AddField(
            model_name='reward',
            name='payable_at',
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name='reward',
            name='reverses',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='reversals', to='referrals.reward'),
        ),
        migrations.AddIndex(
            model_name='reward',
            index=models.Index(condition=models.Q(('reverses__isnull', False)), fields=['reverses'], name='reward_reversals'),
        ),
        migrations.AddConstraint(
            model_name='referralprogram',
            constraint=models.CheckConstraint(condition=models.Q(('hold_days__lte', 3650)), name='referralprogram_hold_in_range'),
        ),
        migrations.AddConstraint(
            model_name='referralprogram',
            constraint=models.CheckConstraint(condition=models.Q(('payout_minimum__gte', 0)), name='referralprogram_payout_minimum_gte_0'),
        ),
        migrations.AddConstraint(
            model_name='reward',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('amount__gte', 0), ('reverses__isnull', True)), models.Q(('amount__lt', 0), ('reverses__isnull', False)), _connector='OR'), name='reward_amount_sign'),
        ),
        migrations.AddField(
            model_name='attachmentrefusal',
            name='client',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='billing.client'),
        ),
        migrations.AddField(
            model_name='attachmentrefusal',
            name='partner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachment_refusals', to='billing.client'),
        ),
        migrations.AddField(
            model_name='attachmentrefusal',
            name='program',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachment_refusals', to='referrals.referralprogram'),
        ),
        migrations.AddConstraint(
            model_name='payoutbatch',
            constraint=models.CheckConstraint(condition=models.Q(('reference', ''), _negated=True), name='payoutbatch_has_reference'),
        ),
        migrations.AddField(
            model_name='payout',
            name='batch',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='referrals.payoutbatch'),
        ),
        migrations.AddIndex(
            model_name='attachmentrefusal',
            index=models.Index(fields=['partner', 'program'], name='referrals_a_partner_482775_idx'),
        ),
        migrations.RemoveConstraint(model_name="accrualmark", name="accrualmark_ids_gte_0"),
        migrations.AddField(
            model_name="accrualmark",
            name="refunds_through",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name="accrualmark",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("expenses_through__gte", 0),
                    ("referrals_through__gte", 0),
                    ("services_through__gte", 0),
                    ("rewards_through__gte", 0),
                    ("refunds_through__gte", 0),
                ),
                name="accrualmark_ids_in_range",
            ),
        ),
    ]
