from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from common.jobs import STALE_AFTER, job_done_so_far, jobs_sweep_stale
from common.models import History, Job
from common.signin import minutes_left
from common.throttle import Throttled


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
class HistoryAdmin(admin.ModelAdmin):
    list_display = ["changedate", "content_type", "object_id", "desc", "username", "ip", "action"]
    list_filter = ["content_type", "action"]
    search_fields = ["desc", "username"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Background jobs, each with a page that follows its progress."""

    list_display = ["id", "kind", "status", "done", "total", "username", "created_at", "progress"]
    list_filter = ["kind", "status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

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
        # Polled twice a second: only a job that looks abandoned costs a write.
        unfinished = job.status in (Job.Status.QUEUED, Job.Status.RUNNING)
        if unfinished and job.created_at < timezone.now() - STALE_AFTER:
            jobs_sweep_stale()
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
    return {
        "id": job.pk,
        "status": job.status,
        "done": done,
        "total": job.total,
        "percent": int(done * 100 / job.total) if job.total else 100,
        "message": job.message,
        "finished": job.status in (Job.Status.DONE, Job.Status.FAILED),
        "back": job.params.get("back", ""),
    }
