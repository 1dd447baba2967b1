"""Demo data for `make run`: a provider, clients, groups, tariffs, promotions with used codes, a
referral program with partners and rewards, the DigiPay example company, and an operator."""

import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.actors import Actor
from digipay_api.demo import DEMO_COMPANY_ID, DEMO_TOKEN, demo_company_ensure
from promotions import services
from promotions.demo import demo_code_uses, demo_overlapping_promotions
from promotions.models import Condition, Discount
from referrals.demo import demo_referral_activity
from referrals.models import Referral, ReferralProgram, Rule

DEMO_PROVIDER = "Demo Hosting"


class Command(BaseCommand):
    help = "Load demo data once (idempotent); refuses unless DEBUG is on."

    @transaction.atomic
    def handle(self, *args, **opts):
        if not settings.DEBUG:
            raise CommandError(
                "load_demo creates the operator admin/admin: run it only with DEBUG=1"
            )
        digipay = f"DigiPay demo: CompanyID: {DEMO_COMPANY_ID}, Authorization: Token {DEMO_TOKEN}"
        if Provider.objects.filter(name=DEMO_PROVIDER).exists():
            # The DigiPay example also goes into a database whose demo data came before it.
            if demo_company_ensure()[1]:
                self.stdout.write(digipay)
            self.stdout.write("Demo data is loaded already.")
            return
        actor = Actor.system("load_demo")
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", "admin")

        usd, _ = Currency.objects.get_or_create(iso="USD", defaults={"name": "US dollar"})
        Currency.objects.get_or_create(iso="EUR", defaults={"name": "Euro"})
        provider = Provider.objects.create(name=DEMO_PROVIDER, currency=usd)
        vip = ClientGroup.objects.get_or_create(name="VIP")[0]
        ClientGroup.objects.get_or_create(name="Resellers")
        start = Tariff.objects.create(name="VPS Start", provider=provider, price=Decimal("5.00"))
        pro = Tariff.objects.create(name="VPS Pro", provider=provider, price=Decimal("20.00"))
        Tariff.objects.create(
            name="Cloud daily", provider=provider, price=Decimal("0.50"), charge=Tariff.Charge.DAILY
        )
        now = timezone.now()
        clients = []
        for i, name in enumerate(["Alice", "Bob", "Carol", "Dave", "Erin"]):
            client = Client.objects.create(
                name=name,
                email=f"{name.lower()}@example.com",
                provider=provider,
                registration_date=now - datetime.timedelta(days=400 - 90 * i),
            )
            clients.append(client)
        clients[0].groups.add(vip)
        for client, tariff in [(clients[0], pro), (clients[0], start), (clients[1], start)]:
            service = Service.objects.create(
                client=client, tariff=tariff, period=12, status=Service.Status.ACTIVE, paid=True
            )
            Expense.objects.create(
                client=client, service=service, amount=tariff.price * 12, currency=usd
            )
        program = ReferralProgram.objects.create(
            provider=provider,
            name="Friends bring friends",
            promocode="FRIEND@ID@",
            start_date=timezone.localdate() - datetime.timedelta(days=90),
            url="https://demo-hosting.example/",
        )
        Referral.objects.create(
            program=program, partner=clients[0], client=clients[4], source=Referral.Source.LINK
        )
        Rule.objects.create(program=program, name="10% of every charge", amount=Decimal("10"))

        today = timezone.localdate()
        spring = services.promotion_create(
            actor=actor,
            name="Spring sale",
            provider=provider,
            fromdate=today - datetime.timedelta(days=10),
            todate=today + datetime.timedelta(days=60),
        )
        services.discount_create(
            promotion=spring,
            actor=actor,
            percentage=Decimal("10"),
            actiontype=Discount.ActionType.ORDER,
            period=[12],
        )
        services.condition_create(
            promotion=spring,
            actor=actor,
            ctype=Condition.Type.SERVICE_COUNT,
            amount=1,
            group="new",
            groupname="loyal or new",
        )
        services.condition_create(
            promotion=spring,
            actor=actor,
            ctype=Condition.Type.REGISTRATION,
            periodtype="month",
            periodlength=1,
            group="loyal or new",
        )
        services.condition_create(
            promotion=spring, actor=actor, ctype=Condition.Type.ACCOUNT_GROUP, account_group=vip
        )
        services.promocodes_generate(
            promotion=spring,
            actor=actor,
            template="SPRING-??????",
            count=20,
            digits_only=False,
            uselimit=5,
        )
        services.promocode_create(promotion=spring, actor=actor, code="SPRING-VIP", uselimit=100)

        welcome = services.promotion_create(
            actor=actor, name="Welcome 20", provider=provider, fromdate=today
        )
        services.discount_create(
            promotion=welcome,
            actor=actor,
            percentage=Decimal("20"),
            type=Discount.Type.PRICELIST,
            pricelist=[start],
            actiontype=Discount.ActionType.ORDER,
            validity=Discount.Validity.MONTHS,
            validitylength=3,
        )
        services.condition_create(
            promotion=welcome,
            actor=actor,
            ctype=Condition.Type.AFFILIATE,
            affiliate=program,
        )
        services.promocode_create(
            promotion=welcome, actor=actor, code="WELCOME20", uselimit=1000, account_uselimit=1
        )
        # Activity for the admin's pages and charts: used codes, partners, a month of rewards.
        friday = services.promotion_create(
            actor=actor,
            name="Black Friday",
            provider=provider,
            fromdate=today - datetime.timedelta(days=35),
            todate=today + datetime.timedelta(days=10),
        )
        services.discount_create(promotion=friday, actor=actor, percentage=Decimal("15"))
        used = demo_code_uses(promotion=friday, tariff=start, actor=actor)
        overlap = demo_overlapping_promotions(provider=provider, actor=actor, today=today)
        rewards = demo_referral_activity(program=program, partners=clients[:3], actor=actor)
        self.stdout.write(
            f"Demo data loaded: provider {provider.pk}, promotions {spring.pk}, {welcome.pk} and "
            f"{friday.pk} ({used} codes used), overlapping {', '.join(str(p.pk) for p in overlap)}, "
            f"{rewards} referral rewards; operator admin/admin."
        )
        # After the rest, so the demo provider keeps id 1.
        demo_company_ensure()
        self.stdout.write(digipay)
