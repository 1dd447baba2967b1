"""Refunds: a negative expense names the charge it refunds; the charge counts what has been
refunded of it (never more than its amount, a CHECK the guarded UPDATE of expense_create meets)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='expense',
            name='refunded',
            field=models.DecimalField(db_default=0, decimal_places=4, default=0, editable=False, max_digits=20, verbose_name='refunded so far'),
        ),
        migrations.AddField(
            model_name='expense',
            name='refunds',
            field=models.ForeignKey(blank=True, db_index=False, help_text="The charge this refund gives money back on (a refund's amount is negative).", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='refund_set', to='billing.expense'),
        ),
        migrations.AddIndex(
            model_name="expense",
            index=models.Index(
                condition=models.Q(("refunds__isnull", False)),
                fields=["refunds", "id"],
                name="expense_refunds",
            ),
        ),
        migrations.AddIndex(
            model_name="expense",
            index=models.Index(
                condition=models.Q(("refunds__isnull", False)),
                fields=["id"],
                name="expense_refund_ids",
            ),
        ),
        migrations.AddConstraint(
            model_name='expense',
            constraint=models.CheckConstraint(condition=models.Q(('refunds__isnull', True), ('amount__lt', 0), _connector='OR'), name='expense_refund_is_negative'),
        ),
        migrations.AddConstraint(
            model_name='expense',
            constraint=models.CheckConstraint(condition=models.Q(('refunded', 0), models.Q(('refunded__gt', 0), ('refunded__lte', models.F('amount'))), _connector='OR'), name='expense_refunded_within_amount'),
        ),
    ]
