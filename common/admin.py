from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from common.admin_tools import ListedOnlyAdmin, ListedOnlyInline
from common.jobs import job_done_so_far, jobs_sweep_lost
from common.models import History, Job
from common.signin import minutes_left
from common.throttle import Throttled
from ops.models import JobAttempt
from ops.selectors import worker_seen


class BrakedAdminLoginForm(AdminAuthenticationForm):
    """The admin login under the one sign-in policy: when the brake refuses, it says for how long."""

    def clean(self):
        try:
            return super().clean()
        except Throttled as exc:
            raise ValidationError(
                f"Too many failed sign-ins; try again in {minutes_left(exc.retry_after)}.",
                code="throttled",
            ) from None


admin.site.login_form = BrakedAdminLoginForm


@admin.register(History)
class HistoryAdmin(ListedOnlyAdmin):
    list_display = ["changedate", "content_type", "changed", "desc", "username", "ip", "action"]
    list_filter = ["content_type", "action"]
    list_select_related = ["content_type"]
    search_fields = ["desc", "username"]

    @admin.display(description="object", ordering="object_id")
    def changed(self, row: History) -> str:
        """A link to the changed object's page (its root's: a discount's promotion), when the
        admin has one."""
        try:
            url = reverse(
                f"admin:{row.content_type.app_label}_{row.content_type.model}_change",
                args=[row.object_id],
            )
        except NoReverseMatch:
            return f"#{row.object_id}"
        return format_html('<a href="{}">#{}</a>', url, row.object_id)


class JobAttemptInline(ListedOnlyInline):
    model = JobAttempt
    fields = ["number", "worker", "started_at", "heartbeat_at", "finished_at", "outcome", "error"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(ListedOnlyAdmin):
    """Background jobs, each with a page that follows its progress, and their attempts."""

    inlines = [JobAttemptInline]
    list_display = ["id", "kind", "status", "done", "total", "username", "created_at", "progress"]
    list_filter = ["kind", "status"]

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        url = reverse("admin:common_job_progress", args=[job.pk])
        return format_html('<a href="{}">follow</a>', url)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress/", view(self.progress_view), name="common_job_progress"),
            path("<int:job_id>/status/", view(self.status_view), name="common_job_status"),
            *super().get_urls(),
        ]

    def _job(self, request, job_id: int) -> Job:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(Job, pk=job_id)
        # Polled twice a second: a read of its open attempt, a write only if its worker is lost.
        if job.status == Job.Status.RUNNING and jobs_sweep_lost(job_id=job.pk):
            job.refresh_from_db()
        return job

    def status_view(self, request, job_id: int):
        job = self._job(request, job_id)
        return JsonResponse(job_status(job))

    def progress_view(self, request, job_id: int):
        job = self._job(request, job_id)
        return render(
            request,
            "admin/common/job_progress.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{job.params.get('title') or job.kind}",
                "job": job,
                "state": job_status(job),
                "status_url": reverse("admin:common_job_status", args=[job.pk]),
                "opts": self.model._meta,
            },
        )


def job_status(job: Job) -> dict:
    done = job_done_so_far(job)
    message = job.message
    if job.status == Job.Status.QUEUED and not message and worker_seen() != "ok":
        message = "Waiting for a worker: none was seen lately (`make worker` starts one)."
    return {
        "id": job.pk,
        "status": job.status,
        "done": done,
        "total": job.total,
        "percent": int(done * 100 / job.total) if job.total else 100,
        "message": message,
        "finished": job.status in (Job.Status.DONE, Job.Status.FAILED),
        "back": job.params.get("back", ""),
        "links": job.params.get("links", []) if job.status == Job.Status.DONE else [],
    }
