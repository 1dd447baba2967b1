from django.db import migrations, models


def callers_from_history(apps, schema_editor):
    """A redemption's caller is the user its history says redeemed it (or the system)."""
    Redemption = apps.get_model("promotions", "Redemption")
    History = apps.get_model("common", "History")
    ContentType = apps.get_model("contenttypes", "ContentType")
    kind = ContentType.objects.filter(app_label="promotions", model="redemption").first()
    if kind is None:
        return
    redeemed_by = dict(
        History.objects.filter(
            content_type=kind, desc__startswith="Order redeemed", user__isnull=False
        ).values_list("object_id", "user_id")
    )
    for redemption in Redemption.objects.filter(pk__in=list(redeemed_by)).only("pk"):
        Redemption.objects.filter(pk=redemption.pk).update(
            caller=f"user:{redeemed_by[redemption.pk]}"
        )


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0003_attempt"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("promotions", "0004_code_prefix_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="redemption",
            name="caller",
            field=models.CharField(default="system", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(callers_from_history, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="redemption",
            name="idempotency_key",
            field=models.CharField(max_length=255),
        ),
        migrations.AddConstraint(
            model_name="redemption",
            constraint=models.UniqueConstraint(
                fields=("provider", "caller", "idempotency_key"),
                name="redemption_key_once_per_provider_and_caller",
            ),
        ),
    ]
