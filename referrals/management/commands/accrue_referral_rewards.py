import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from referrals.accrual import rewards_accrue
from referrals.models import ReferralProgram


class Command(BaseCommand):
    help = "Accrue partners' rewards on their referrals' expenses; a re-run adds nothing."

    def add_arguments(self, parser):
        parser.add_argument("--program", type=int, help="Only this referral program.")
        parser.add_argument("--until", help="Only expenses up to this date (YYYY-MM-DD), included.")

    def handle(self, *args, program=None, until=None, **options):
        chosen = None
        if program is not None:
            chosen = ReferralProgram.objects.filter(pk=program).first()
            if chosen is None:
                raise CommandError(f"There is no referral program {program}.")
        try:
            last_day = datetime.date.fromisoformat(until) if until else None
        except ValueError:
            raise CommandError("--until is a date as YYYY-MM-DD.") from None
        with tqdm(unit=" rewards", disable=options["verbosity"] == 0) as bar:

            def progress(total: int) -> None:
                bar.update(total - bar.n)

            added = rewards_accrue(program=chosen, until=last_day, progress=progress)
        self.stdout.write(f"{added} rewards accrued.")
