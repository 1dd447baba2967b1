from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from common.actors import Actor
from promotions import services
from promotions.models import Promotion


class Command(BaseCommand):
    help = 'Generate COUNT unique promo codes for a promotion from a template where "?" is random.'

    def add_arguments(self, parser):
        parser.add_argument("promotion_id", type=int)
        parser.add_argument("--template", required=True, help='e.g. "SPRING-????????"')
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--onlydigit", action="store_true", help="digits only")
        parser.add_argument("--uselimit", type=int, default=None)
        parser.add_argument("--account-uselimit", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        promotion = Promotion.objects.filter(pk=opts["promotion_id"]).first()
        if promotion is None:
            raise CommandError(f"There is no promotion {opts['promotion_id']}")
        if "?" not in opts["template"]:
            raise CommandError('The template needs at least one "?"')
        bar = tqdm(total=opts["count"], unit="code", disable=opts["no_progress"])

        def progress(done: int) -> None:
            bar.update(done - bar.n)

        try:
            made = services.promocodes_generate(
                promotion=promotion,
                actor=Actor.system("generate_promocodes"),
                template=opts["template"],
                count=opts["count"],
                digits_only=opts["onlydigit"],
                uselimit=opts["uselimit"],
                account_uselimit=opts["account_uselimit"],
                progress=progress,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        finally:
            bar.close()
        self.stdout.write(f"{made} promo codes generated for promotion {promotion.pk}")
