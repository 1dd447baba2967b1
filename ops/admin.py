from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from common.money import moment_format
from ops.models import Schedule
from ops.schedule import schedule_start


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Scheduled work (accrual): the last run with its figures, the one running, the next."""

    list_display = ["name", "timetable", "last_run", "figures", "running", "next_run_at"]
    readonly_fields = [f.name for f in Schedule._meta.fields]
    actions = ["run_now"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="every")
    def timetable(self, schedule: Schedule) -> str:
        if not schedule.every_hours:
            return "off"
        return f"{schedule.every_hours:g} h from {schedule.at:%H:%M}"

    @admin.display(description="last run")
    def last_run(self, schedule: Schedule) -> str:
        job = schedule.last_job
        if job is None:
            return "never"
        url = reverse("admin:common_job_progress", args=[job.pk])
        return format_html(
            '<a href="{}">{}</a> {}',
            url,
            job.status,
            moment_format(job.finished_at or job.created_at),
        )

    @admin.display(description="figures")
    def figures(self, schedule: Schedule) -> str:
        return ", ".join(f"{k}: {v}" for k, v in schedule.last_figures.items()) or "-"

    @admin.display(description="running now")
    def running(self, schedule: Schedule) -> str:
        job = schedule.current_job
        if job is None or job.status in ("done", "failed"):
            return "-"
        url = reverse("admin:common_job_progress", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, job.status)

    @admin.action(description="Run now", permissions=["change"])
    def run_now(self, request, queryset):
        for schedule in queryset:
            job = schedule_start(name=schedule.name)
            if job is None:
                self.message_user(
                    request, f"{schedule.name} is running already.", level=messages.WARNING
                )
            else:
                self.message_user(request, f"{schedule.name} queued as job {job.pk}.")
