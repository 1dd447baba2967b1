"""Writes of the DigiPay door: companies, tokens, and programs through referrals.services.

A program's title is unique per provider by a database constraint (whatever door made the other
program); a company's program writes queue on its row.
"""

import secrets
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from billing.models import Currency, Provider
from common.actors import Actor
from common.services import history_record
from digipay_api import conditions
from digipay_api.conditions import ReferralCondition
from digipay_api.models import ApiToken, Company, CompanyCurrency, DigiPayProgram, new_public_id
from digipay_api.selectors import key_digest
from referrals import services as referrals

RULE_NAME = "DigiPay referral condition"
UNCHANGED: Any = object()


# Companies, currencies and tokens --------------------------------------------------------------


@transaction.atomic
def company_create(
    *,
    name: str,
    currency: Currency,
    actor: Actor,
    public_id: str | None = None,
    currency_public_id: str | None = None,
) -> Company:
    """A company and its provider; a provider of that name with no company yet becomes its own.

    The provider's currency is the company's first currency.
    """
    name = name.strip()
    provider = Provider.objects.filter(name=name).first()
    if provider is None:
        provider = Provider(name=name, currency=currency)
        provider.full_clean()
        provider.save()
    elif Company.objects.filter(provider=provider).exists():
        raise ValidationError({"name": f"The provider {name} belongs to a company already."})
    company = Company(name=name, provider=provider, public_id=public_id or new_public_id())
    company.full_clean()
    company.save()
    history_record(obj=company, actor=actor, desc=f'Company "{company}" has been created')
    company_currency_add(
        company=company, currency=provider.currency, actor=actor, public_id=currency_public_id
    )
    return company


@transaction.atomic
def company_currency_add(
    *, company: Company, currency: Currency, actor: Actor, public_id: str | None = None
) -> CompanyCurrency:
    """The company's id for a currency, made once."""
    existing = CompanyCurrency.objects.filter(company=company, currency=currency).first()
    if existing is not None:
        return existing
    row = CompanyCurrency(
        company=company, currency=currency, public_id=public_id or new_public_id()
    )
    row.full_clean()
    row.save()
    history_record(obj=company, actor=actor, desc=f"Currency {currency} has the id {row.public_id}")
    return row


@transaction.atomic
def token_create(*, company: Company, actor: Actor, key: str | None = None) -> tuple[ApiToken, str]:
    """A new token of the company and its key, which is not kept and cannot be shown again."""
    key = key or secrets.token_hex(20)
    token = ApiToken(company=company, key_hash=key_digest(key), prefix=key[:4])
    token.full_clean()
    token.save()
    history_record(obj=company, actor=actor, desc=f"API token {token.prefix}… has been created")
    return token, key


@transaction.atomic
def tokens_revoke(*, tokens: Iterable[ApiToken], actor: Actor) -> int:
    """Revoke the live ones among `tokens`; their next request answers 401."""
    now = timezone.now()
    revoked = 0
    for token in tokens:
        if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
            revoked += 1
            history_record(
                obj=token.company, actor=actor, desc=f"API token {token.prefix}… has been revoked"
            )
    return revoked


# Programs ---------------------------------------------------------------------------------------


def _lock(company: Company) -> Company:
    return (
        Company.objects.select_for_update(of=("self",))
        .select_related("provider")
        .get(pk=company.pk)
    )


def _expiry_clamped(fields: dict, start) -> dict:
    """An expiry day before the start is the start day: the program runs that day only."""
    end = fields.get("end_date")
    if end is not None and end < start:
        return {**fields, "end_date": start}
    return fields


@transaction.atomic
def program_create(
    *, company: Company, actor: Actor, fields: dict, condition: ReferralCondition | None
) -> DigiPayProgram:
    """A referral program of the company's provider, its DigiPay id, and its rule if any."""
    company = _lock(company)
    start = timezone.localdate()
    program = referrals.program_create(
        actor=actor,
        provider=company.provider,
        start_date=start,
        **_expiry_clamped(fields, start),
    )
    dp = DigiPayProgram.objects.create(company=company, program=program)
    if condition is not None:
        _rule_replace(dp, condition, actor)
    return dp


@transaction.atomic
def program_update(
    *, dp: DigiPayProgram, actor: Actor, fields: dict, condition: Any = UNCHANGED
) -> DigiPayProgram:
    """Change the fields given; `condition` replaces the rule (None removes it)."""
    _lock(dp.company)
    dp = DigiPayProgram.objects.select_related("program", "rule").get(pk=dp.pk)
    program = dp.program
    if fields:
        referrals.program_update(
            program=program, actor=actor, **_expiry_clamped(fields, program.start_date)
        )
    if condition is not UNCHANGED:
        _rule_replace(dp, condition, actor)
    return dp


@transaction.atomic
def program_delete(*, dp: DigiPayProgram, actor: Actor) -> None:
    """Delete the program (refused while it has referrals); its DigiPay id goes with it."""
    _lock(dp.company)
    referrals.program_delete_many(programs=[dp.program], actor=actor)


def _rule_replace(dp: DigiPayProgram, condition: ReferralCondition | None, actor: Actor) -> None:
    """Make the program's DigiPay rule say `condition`, through the referral services."""
    rule = dp.rule
    if condition is None:
        if rule is not None:
            if rule.rewards.exists():
                referrals.rule_update(rule=rule, actor=actor, active=False)
            else:
                referrals.rule_delete_many(rules=[rule], actor=actor)
            dp.rule = None
            dp.save(update_fields=["rule"])
        return
    values = {
        "reward_type": condition.reward_type,
        "amount": condition.reward,
        "schedule": condition.period,
        "active": True,
    }
    if rule is None:
        rule = referrals.rule_create(program=dp.program, actor=actor, name=RULE_NAME, **values)
        dp.rule = rule
        dp.save(update_fields=["rule"])
    else:
        referrals.rule_update(rule=rule, actor=actor, **values)
        referrals.rule_condition_delete_many(conditions=list(rule.conditions.all()), actor=actor)
    for row in conditions.condition_fields(condition):
        referrals.rule_condition_create(rule=rule, actor=actor, **row)
