import django.db.models.deletion
from django.db import migrations, models


def existing_jobs(apps, schema_editor):
    """Jobs queued before tasks were recorded: the sweep takes them as queued when created."""
    Job = apps.get_model("common", "Job")
    JobTask = apps.get_model("ops", "JobTask")
    JobTask.objects.bulk_create(
        JobTask(job_id=pk, queued_at=created_at)
        for pk, created_at in Job.objects.filter(status__in=["queued", "running"]).values_list(
            "pk", "created_at"
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0003_attempt"),
        ("ops", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobTask",
            fields=[
                (
                    "job",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="task",
                        serialize=False,
                        to="common.job",
                    ),
                ),
                ("task_id", models.CharField(blank=True, max_length=64)),
                ("queued_at", models.DateTimeField()),
                ("actor", models.JSONField(default=dict)),
            ],
        ),
        migrations.RunPython(existing_jobs, migrations.RunPython.noop),
    ]
