"""DigiPay API tokens: `create --company NAME` (the company too, when new) and `revoke`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Currency
from common.actors import Actor
from digipay_api import selectors, services
from digipay_api.models import ApiToken, Company


class Command(BaseCommand):
    help = (
        "create --company NAME: a new token (and the company, if new); prints company_id= and "
        "token=, the key shown this once. revoke --key KEY | --company NAME_OR_ID."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new token of a company")
        create.add_argument("--company", required=True, help="the company's name")
        create.add_argument(
            "--currency", default="USD", help="ISO code of a new company's currency (USD)"
        )
        revoke = sub.add_parser("revoke", help="revoke one key, or every token of a company")
        which = revoke.add_mutually_exclusive_group(required=True)
        which.add_argument("--key", help="the token's key")
        which.add_argument("--company", help="the company's name or id: all its tokens")

    def handle(self, *args, **opts):
        actor = Actor.system("digipay_token")
        try:
            if opts["action"] == "create":
                self.create(opts["company"], opts["currency"], actor)
            else:
                self.revoke(opts.get("key"), opts.get("company"), actor)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

    @transaction.atomic
    def create(self, name: str, iso: str, actor: Actor) -> None:
        name = name.strip()
        if not name:
            raise CommandError("Name the company: --company NAME")
        company = Company.objects.filter(name=name).first()
        if company is None:
            currency, _ = Currency.objects.get_or_create(
                iso=iso.strip().upper(), defaults={"name": iso.strip().upper()}
            )
            company = services.company_create(name=name, currency=currency, actor=actor)
        _, key = services.token_create(company=company, actor=actor)
        self.stdout.write(f"company_id={company.public_id}\ntoken={key}")

    def revoke(self, key: str | None, company: str | None, actor: Actor) -> None:
        if key:
            token = selectors.token_find(key=key.strip())
            if token is None:
                raise CommandError("No live token has this key.")
            tokens = [token]
        else:
            found = Company.objects.filter(name=company.strip()).first()
            found = found or Company.objects.filter(public_id=company.strip().lower()).first()
            if found is None:
                raise CommandError(f"There is no company {company}.")
            tokens = list(ApiToken.objects.filter(company=found, revoked_at__isnull=True))
        revoked = services.tokens_revoke(tokens=tokens, actor=actor)
        self.stdout.write(f"revoked={revoked}")
