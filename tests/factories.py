import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import Client, ClientGroup, Currency, Expense, Provider, Service, Tariff
from common.models import Job
from digipay_api.models import ApiToken, Company, CompanyCurrency
from digipay_api.selectors import key_digest
from promotions.engine.rules import rules_version_bump
from promotions.models import (
    Condition,
    ConditionGroup,
    Discount,
    PromoCode,
    PromoCodeUsage,
    Promotion,
    Redemption,
)
from referrals.models import (
    Partnership,
    Payout,
    PayoutBatch,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
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
    partner = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..program.provider")
    )
    client = factory.SubFactory(ClientFactory, provider=factory.SelfAttribute("..program.provider"))
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
    partner = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..program.provider")
    )


class PromoCodeUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromoCodeUsage

    promocode = factory.SubFactory(PromoCodeFactory)
    client = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..promocode.promotion.provider")
    )
    created_at = factory.LazyFunction(timezone.now)


class RedemptionFactory(factory.django.DjangoModelFactory):
    """A redemption as the redeem service stores it: the quote it answered, here one line of
    `price` discounted by `discount` by `promotion` (traits of the factory, not fields)."""

    class Meta:
        model = Redemption

    class Params:
        promotion = factory.SubFactory(PromotionFactory)
        price = Decimal("100.00")
        discount = Decimal("10.00")
        currency = "USD"

    idempotency_key = factory.Sequence(lambda n: f"key-{n}")
    caller = "system"
    fingerprint = factory.Sequence(lambda n: f"{n:064d}")
    provider = factory.SelfAttribute("promotion.provider")
    client = factory.SubFactory(ClientFactory, provider=factory.SelfAttribute("..provider"))
    created_at = factory.LazyFunction(timezone.now)
    quote = factory.LazyAttribute(
        lambda o: {
            "lines": [
                {
                    "tariff": 1,
                    "period": 1,
                    "kind": "new",
                    "currency": o.currency,
                    "price": str(o.price),
                    "discount": str(o.discount),
                    "final_price": str(o.price - o.discount),
                    "promotion": o.promotion.pk,
                    "code": None,
                    "verdicts": [],
                }
            ],
            "codes": [],
            "total": str(o.price - o.discount),
            "discount_total": str(o.discount),
            "explained": False,
        }
    )


class PayoutBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayoutBatch

    reference = factory.Sequence(lambda n: f"PAY-{n}")
    created_by = "operator"


class PayoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payout

    batch = factory.SubFactory(PayoutBatchFactory)
    program = factory.SubFactory(ReferralProgramFactory)
    partner = factory.SubFactory(
        ClientFactory, provider=factory.SelfAttribute("..program.provider")
    )
    amount = Decimal("10.00")
    currency = factory.SubFactory(CurrencyFactory)
    paid_by = "operator"


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    kind = "test"
    total = 1
    username = "operator"


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
