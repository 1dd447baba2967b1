import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from common.actors import Actor
from ops.schedule import ACCRUAL, ScheduleBusy, schedule_run_here
from referrals.models import ReferralProgram


class Command(BaseCommand):
    help = (
        "Accrue partners' rewards on their referrals' expenses; a re-run adds nothing. Refused "
        "while a scheduled accrual is in progress; recorded as the schedule's last run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", type=int, help="Only this referral program.")
        parser.add_argument("--until", help="Only expenses up to this date (YYYY-MM-DD), included.")

    def handle(self, *args, program=None, until=None, **options):
        if program is not None and not ReferralProgram.objects.filter(pk=program).exists():
            raise CommandError(f"There is no referral program {program}.")
        try:
            last_day = datetime.date.fromisoformat(until) if until else None
        except ValueError:
            raise CommandError("--until is a date as YYYY-MM-DD.") from None
        params = {
            "title": "Accrual of referral rewards (manage.py accrue_referral_rewards)",
            "program": program,
            "until": last_day.isoformat() if last_day else None,
        }
        with tqdm(unit=" rewards", disable=options["verbosity"] == 0) as bar:
            try:
                job, figures = schedule_run_here(
                    name=ACCRUAL,
                    params=params,
                    actor=Actor.system("accrue_referral_rewards"),
                    progress=lambda total: bar.update(total - bar.n),
                )
            except ScheduleBusy as busy:
                raise CommandError(
                    f"Accrual is in progress ({busy}); run this again once it has ended."
                ) from None
        if job.status != job.Status.DONE:
            raise CommandError(f"Accrual job {job.pk}: {job.message}")
        self.stdout.write(f"{figures['rewards']} rewards accrued.")
