from django.conf import settings
from django.core.management.base import BaseCommand

from ops import worker


class Command(BaseCommand):
    help = (
        "Run a background worker: jobs from the task queue (database or RQ backend), its "
        "heartbeat, failing jobs whose worker was lost, and scheduled accrual."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queue", default=settings.JOBS_QUEUE, help="Queue to work on.")
        parser.add_argument("--max-tasks", type=int, help="Stop after this many tasks.")
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart on code changes (make run does, for development).",
        )

    def handle(self, *args, queue: str, max_tasks: int | None, reload: bool, **options):
        worker.run(queue=queue, max_tasks=max_tasks, reload=reload)
