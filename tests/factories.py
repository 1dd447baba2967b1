import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from billmgr_api.models import BillmgrSession, SavedFilter
from common.models import Attempt, History, Job, SigninNetwork
from digipay_api.models import ApiToken, Company, CompanyCurrency, DigiPayProgram
from digipay_api.selectors import key_digest
from ops.models import JobAttempt, JobTask, Schedule, WorkerBeat
from promotions.engine.rules import rules_version_bump
from promotions.models import (
    BacktestOrder,
    BudgetCharge,
    BudgetSpend,
    ClientBudgetSpend,
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
    Redemption,
    RulesVersion,
)
from referrals.models import (
    AccrualMark,
    AttachmentRefusal,
    LinkClick,
    Partnership,
    Payout,
    PayoutBatch,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
    RuleConditionGroup,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "secret")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CurrencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Currency
        django_get_or_create = ("iso",)

    name = "US dollar"
    iso = "USD"
    minor_units = 2


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"Provider {n}")
    currency = factory.SubFactory(CurrencyFactory)


class ClientGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClientGroup

    name = factory.Sequence(lambda n: f"Group {n}")


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    name = factory.Sequence(lambda n: f"Client {n}")
    email = factory.LazyAttribute(lambda o: f"{o.name.replace(' ', '').lower()}@example.com")
    provider = factory.SubFactory(ProviderFactory)
    registration_date = factory.LazyFunction(timezone.now)


def client_of_the_program() -> factory.SubFactory:
    """A client of the provider of the row's `program`."""
    return factory.SubFactory(ClientFactory, provider=factory.SelfAttribute("..program.provider"))


class TariffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tariff

    name = factory.Sequence(lambda n: f"Tariff {n}")
    provider = factory.SubFactory(ProviderFactory)
    price = Decimal("10.00")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    client = factory.SubFactory(ClientFactory)
    tariff = factory.SubFactory(TariffFactory, provider=factory.SelfAttribute("..client.provider"))
    status = Service.Status.ACTIVE
    opened_at = factory.LazyFunction(timezone.now)


class ExpenseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Expense

    client = factory.SubFactory(ClientFactory)
    amount = Decimal("12.50")
    currency = factory.SubFactory(CurrencyFactory)
    created_at = factory.LazyFunction(timezone.now)


class ReferralProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReferralProgram

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"Program {n}")


class RulesFactory(factory.django.DjangoModelFactory):
    """A promotion's rule row made directly, as its service would make it: the provider's rules
    version moves, so a compiled rule set made before it is not used again."""

    class Meta:
        abstract = True

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        super()._after_postgeneration(instance, create, results)
        if create:
            promotion = instance if isinstance(instance, Promotion) else instance.promotion
            rules_version_bump(provider_id=promotion.provider_id)


class PromotionFactory(RulesFactory):
    class Meta:
        model = Promotion

    name = factory.Sequence(lambda n: f"Promotion {n}")
    provider = factory.SubFactory(ProviderFactory)
    fromdate = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=1))
    todate = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=30))


class DiscountFactory(RulesFactory):
    class Meta:
        model = Discount

    promotion = factory.SubFactory(PromotionFactory)
    percentage = Decimal("10")


class ConditionGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConditionGroup

    promotion = factory.SubFactory(PromotionFactory)
    name = factory.Sequence(lambda n: f"group {n}")


class ConditionFactory(RulesFactory):
    class Meta:
        model = Condition

    promotion = factory.SubFactory(PromotionFactory)
    ctype = Condition.Type.SERVICE_COUNT
    amount = 1


class PromoCodeFactory(RulesFactory):
    class Meta:
        model = PromoCode

    promotion = factory.SubFactory(PromotionFactory)
    code = factory.Sequence(lambda n: f"CODE{n:06d}")


class ReferralFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Referral

    program = factory.SubFactory(ReferralProgramFactory)
    partner = client_of_the_program()
    client = client_of_the_program()
    source = Referral.Source.PROMOCODE
    # Joined when the program started, so that its expenses earn unless a test says otherwise.
    joined_at = factory.LazyAttribute(
        lambda o: datetime.datetime.combine(
            o.program.start_date, datetime.time.min, tzinfo=datetime.UTC
        )
    )


class RuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rule

    program = factory.SubFactory(ReferralProgramFactory)
    name = factory.Sequence(lambda n: f"Rule {n}")
    reward_type = Rule.RewardType.PERCENT
    amount = Decimal("10")


class RuleConditionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuleCondition

    rule = factory.SubFactory(RuleFactory)
    ctype = RuleCondition.Type.NONE


class RewardFactory(factory.django.DjangoModelFactory):
    """A ledger row written by hand (accrual writes the real ones): on an expense of the referral,
    for its partner, payable from the purchase (no hold)."""

    class Meta:
        model = Reward

    referral = factory.SubFactory(ReferralFactory)
    beneficiary = factory.SelfAttribute("referral.partner")
    rule = factory.SubFactory(RuleFactory, program=factory.SelfAttribute("..referral.program"))
    expense = factory.SubFactory(ExpenseFactory, client=factory.SelfAttribute("..referral.client"))
    amount = Decimal("1.00")
    currency = factory.SelfAttribute("expense.currency")
    payable_at = factory.SelfAttribute("expense.created_at")


class PartnershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partnership

    program = factory.SubFactory(ReferralProgramFactory)
    partner = client_of_the_program()


class PromoCodeUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromoCodeUsage

    promocode = factory.SubFactory(PromoCodeFactory)
    client = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..promocode.promotion.provider")
    )
    created_at = factory.LazyFunction(timezone.now)


class CompanyFactory(factory.django.DjangoModelFactory):
    """A DigiPay company, its provider of the same name, and an id for the provider's currency."""

    class Meta:
        model = Company
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Company {n}")
    provider = factory.SubFactory(ProviderFactory, name=factory.SelfAttribute("..name"))

    @factory.post_generation
    def currency_id(obj, create, extracted, **kwargs):
        if create:
            CompanyCurrency.objects.get_or_create(
                company=obj,
                currency=obj.provider.currency,
                defaults={"public_id": extracted} if extracted else {},
            )


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A token whose plain key is `key` (kept only as its digest, as the service keeps it)."""

    class Meta:
        model = ApiToken

    class Params:
        key = factory.Sequence(lambda n: f"test-token-{n:030d}")

    company = factory.SubFactory(CompanyFactory)
    key_hash = factory.LazyAttribute(lambda o: key_digest(o.key))
    prefix = factory.LazyAttribute(lambda o: o.key[:4])


class CompanyCurrencyFactory(factory.django.DjangoModelFactory):
    """A second currency of a company (CompanyFactory gives it its provider's)."""

    class Meta:
        model = CompanyCurrency

    company = factory.SubFactory(CompanyFactory)
    currency = factory.SubFactory(
        CurrencyFactory,
        iso=factory.Sequence(lambda n: f"X{n:02d}"),
        name=factory.Sequence(lambda n: f"Currency {n}"),
    )


class DigiPayProgramFactory(factory.django.DjangoModelFactory):
    """A company's referral program as DigiPay addresses it, with the rule holding its condition."""

    class Meta:
        model = DigiPayProgram

    company = factory.SubFactory(CompanyFactory)
    program = factory.SubFactory(
        ReferralProgramFactory, provider=factory.SelfAttribute("..company.provider")
    )
    rule = factory.SubFactory(RuleFactory, program=factory.SelfAttribute("..program"))


class RuleConditionGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuleConditionGroup

    rule = factory.SubFactory(RuleFactory)
    name = factory.Sequence(lambda n: f"group {n}")


class LinkClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LinkClick

    program = factory.SubFactory(ReferralProgramFactory)
    partner = client_of_the_program()
    visitor = factory.Sequence(lambda n: f"visitor-{n}")
    address = "192.0.2.1"


class AttachmentRefusalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AttachmentRefusal

    program = factory.SubFactory(ReferralProgramFactory)
    partner = client_of_the_program()
    client = client_of_the_program()
    screen = AttachmentRefusal.Screen.SAME_EMAIL
    reason = "The client's e-mail is the partner's."
    source = Referral.Source.PROMOCODE


class PayoutBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutBatch

    reference = factory.Sequence(lambda n: f"BATCH-{n}")
    created_by = "operator"


class PayoutFactory(factory.django.DjangoModelFactory):
    """A payout row written by hand (the payout services write the real ones, with rewards)."""

    class Meta:
        model = Payout

    batch = factory.SubFactory(PayoutBatchFactory)
    program = factory.SubFactory(ReferralProgramFactory)
    partner = client_of_the_program()
    amount = Decimal("10.00")
    currency = factory.SelfAttribute("program.provider.currency")
    paid_by = "operator"


class AccrualMarkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccrualMark

    rule = factory.SubFactory(RuleFactory)


class RulesVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RulesVersion
        django_get_or_create = ("provider",)

    provider = factory.SubFactory(ProviderFactory)
    version = 1


class RedemptionFactory(factory.django.DjangoModelFactory):
    """A redemption row written by hand (promotions.services.redemption writes the real ones)."""

    class Meta:
        model = Redemption

    client = factory.SubFactory(ClientFactory)
    provider = factory.SelfAttribute("client.provider")
    idempotency_key = factory.Sequence(lambda n: f"order-{n}")
    caller = "system"
    fingerprint = factory.Sequence(lambda n: f"{n:064x}")
    quote = factory.LazyFunction(lambda: {"lines": []})


class BudgetSpendFactory(factory.django.DjangoModelFactory):
    """What a budgeted promotion has given in one period (redemptions move the real ones)."""

    class Meta:
        model = BudgetSpend

    promotion = factory.SubFactory(PromotionFactory, budget=Decimal("100.00"))
    period = "total"
    spent = Decimal("0.00")


class ClientBudgetSpendFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClientBudgetSpend

    promotion = factory.SubFactory(PromotionFactory, client_budget=Decimal("20.00"))
    client = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..promotion.provider")
    )
    period = "total"
    spent = Decimal("0.00")


class BacktestOrderFactory(factory.django.DjangoModelFactory):
    """A past order a backtest found its promotion qualifying for (a row of its CSV)."""

    class Meta:
        model = BacktestOrder

    run = factory.Faker("uuid4", cast_to=None)
    expense = factory.SubFactory(
        ExpenseFactory,
        service=factory.SubFactory(ServiceFactory, client=factory.SelfAttribute("..client")),
        amount=Decimal("20.00"),
    )
    charged_at = factory.SelfAttribute("expense.created_at")
    client = factory.SelfAttribute("expense.client")
    tariff = factory.SelfAttribute("expense.service.tariff")
    kind = BacktestOrder.Kind.NEW
    period = 1
    price = factory.SelfAttribute("expense.amount")
    currency = factory.SelfAttribute("expense.currency")
    discount_alone = Decimal("2.00")
    discount = Decimal("2.00")
    winner = factory.SubFactory(
        PromotionFactory, provider=factory.SelfAttribute("..client.provider")
    )


class BudgetChargeFactory(factory.django.DjangoModelFactory):
    """A redemption's reservation against its promotion's budget."""

    class Meta:
        model = BudgetCharge

    redemption = factory.SubFactory(RedemptionFactory)
    promotion = factory.SubFactory(
        PromotionFactory,
        provider=factory.SelfAttribute("..redemption.provider"),
        budget=Decimal("100.00"),
    )
    period = "total"
    amount = Decimal("10.00")


class HistoryFactory(factory.django.DjangoModelFactory):
    """A history line about `about` (a provider unless a test names another object)."""

    class Meta:
        model = History

    class Params:
        about = factory.SubFactory(ProviderFactory)

    content_type = factory.LazyAttribute(lambda o: ContentType.objects.get_for_model(o.about))
    object_id = factory.SelfAttribute("about.pk")
    desc = "changed"
    username = "operator"
    action = "test"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    kind = "test.job"
    total = 1
    username = "operator"


class JobAttemptFactory(factory.django.DjangoModelFactory):
    """A worker's open attempt at a job, started now (slot 0 unless a test says)."""

    class Meta:
        model = JobAttempt

    job = factory.SubFactory(JobFactory)
    number = 1
    slot = 0
    worker = "w"
    started_at = factory.LazyFunction(timezone.now)
    heartbeat_at = factory.SelfAttribute("started_at")


class JobTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobTask

    job = factory.SubFactory(JobFactory)
    queued_at = factory.LazyFunction(timezone.now)
    actor = factory.LazyFunction(lambda: {"user_id": None, "ip": None, "action": "job"})


class WorkerBeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkerBeat

    worker = factory.Sequence(lambda n: f"worker-{n}")
    backend = "database"
    started_at = factory.LazyFunction(timezone.now)
    seen_at = factory.SelfAttribute("started_at")


class ScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Schedule

    name = factory.Sequence(lambda n: f"schedule-{n}")
    every_hours = 24
    at = datetime.time(3)
    next_run_at = factory.LazyFunction(timezone.now)


class AttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attempt

    key = factory.Sequence(lambda n: f"{n:064x}")
    window_start = factory.LazyFunction(timezone.now)
    failures = 1


class SigninNetworkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SigninNetwork

    key = factory.Sequence(lambda n: f"{n:064x}")
    last_signin = factory.LazyFunction(timezone.now)


class BillmgrSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillmgrSession

    key = factory.Sequence(lambda n: f"{n:064x}")
    user = factory.SubFactory(UserFactory)
    last_seen = factory.LazyFunction(timezone.now)


class SavedFilterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SavedFilter

    user = factory.SubFactory(UserFactory)
    func = "promotion"
    params = factory.LazyFunction(lambda: {"name": "spring"})


def redemption_of(
    promotion: Promotion,
    *,
    discount: Decimal = Decimal("10.00"),
    price: Decimal = Decimal("100.00"),
    currency: str = "USD",
    **fields,
) -> Redemption:
    """A redemption whose stored quote has one line of `price` that `promotion` discounted by
    `discount`, as the redeem service stores it."""
    line = {
        "tariff": 1,
        "period": 1,
        "kind": "new",
        "currency": currency,
        "price": str(price),
        "discount": str(discount),
        "final_price": str(price - discount),
        "promotion": promotion.pk,
        "code": None,
        "applied": [{"promotion": promotion.pk, "code": None, "discount": str(discount)}],
        "verdicts": [],
    }
    return RedemptionFactory(
        client=ClientFactory(provider=promotion.provider),
        quote={
            "lines": [line],
            "codes": [],
            "total": str(price - discount),
            "discount_total": str(discount),
            "explained": False,
        },
        **fields,
    )
