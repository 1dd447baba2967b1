"""Reads of the DigiPay door: tokens, a company's programs, and a program as DigiPay shows it."""

import datetime
import hashlib
from dataclasses import dataclass

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from digipay_api import conditions, mapping
from digipay_api.models import HEX32, ApiToken, Company, CompanyCurrency, DigiPayProgram
from referrals.models import ReferralProgram


def key_digest(key: str) -> str:
    """What is kept of a token's key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def token_find(*, key: str) -> ApiToken | None:
    """The live token with this key, or None (unknown and revoked keys alike)."""
    if not key:
        return None
    return (
        ApiToken.objects.select_related("company__provider")
        .filter(key_hash=key_digest(key), revoked_at__isnull=True)
        .first()
    )


def _public_id(text: str) -> str | None:
    """A 32-hex id as stored, or None for anything else (never sent to the database as it is)."""
    text = text.strip().lower()
    return text if HEX32.regex.match(text) else None


def company_currency_find(*, company: Company, public_id: str) -> CompanyCurrency | None:
    public_id = _public_id(public_id)
    if public_id is None:
        return None
    return (
        CompanyCurrency.objects.select_related("currency")
        .filter(company=company, public_id=public_id)
        .first()
    )


def _programs(company: Company) -> QuerySet:
    return DigiPayProgram.objects.filter(company=company).select_related(
        "program__currency", "rule"
    )


def program_find(*, company: Company, public_id: str) -> DigiPayProgram | None:
    """The company's program with this id; another company's is as missing as an unknown one."""
    public_id = _public_id(public_id)
    if public_id is None:
        return None
    return _programs(company).filter(public_id=public_id).first()


SORTINGS = {
    "created_at": [F("created_at").asc(), F("pk").asc()],
    "-created_at": [F("created_at").desc(), F("pk").desc()],
    "referral_program_title": [F("program__name").asc(), F("pk").asc()],
    "-referral_program_title": [F("program__name").desc(), F("pk").desc()],
    "expiry_date": [F("program__end_date").asc(nulls_last=True), F("pk").asc()],
    "-expiry_date": [F("program__end_date").desc(nulls_first=True), F("pk").desc()],
}


@dataclass(frozen=True)
class ProgramFilter:
    status: int | None = None  # mapping.ACTIVE | INACTIVE | EXPIRED
    is_active: bool | None = None  # True: status ACTIVE; False: INACTIVE or EXPIRED
    search_keyword: str = ""  # in the title or the message, any case
    start_date: datetime.date | None = None  # programs that started on this day or later
    end_date: datetime.date | None = None  # programs that started on this day or earlier
    sorting: str = "-created_at"


def programs_list(
    *, company: Company, filters: ProgramFilter, skip: int, limit: int
) -> tuple[int, list[DigiPayProgram]]:
    """The company's programs that pass the filters: how many in all, and one page of them."""
    today = timezone.localdate()
    rows = _programs(company)

    def shown_as(status: int):
        return ReferralProgram.objects.in_states(mapping.states_of(status), day=today)

    if filters.status is not None:
        rows = rows.filter(program__in=shown_as(filters.status))
    if filters.is_active is True:
        rows = rows.filter(program__in=shown_as(mapping.ACTIVE))
    elif filters.is_active is False:
        rows = rows.exclude(program__in=shown_as(mapping.ACTIVE))
    keyword = filters.search_keyword.strip()
    if keyword:
        rows = rows.filter(
            Q(program__name__icontains=keyword) | Q(program__message__icontains=keyword)
        )
    if filters.start_date:
        rows = rows.filter(program__start_date__gte=filters.start_date)
    if filters.end_date:
        rows = rows.filter(program__start_date__lte=filters.end_date)
    total = rows.count()
    page = list(
        rows.order_by(*SORTINGS[filters.sorting]).prefetch_related("rule__conditions")[
            skip : skip + limit
        ]
    )
    return total, page


def company_currency_ids(*, company: Company) -> dict[int, str]:
    """billing.Currency pk -> the company's id for it."""
    return dict(
        CompanyCurrency.objects.filter(company=company).values_list("currency_id", "public_id")
    )


def program_as_dict(dp: DigiPayProgram, *, currency_ids: dict[int, str] | None = None) -> dict:
    """A program in DigiPay's words: the `referral_program` of a detail, a row of a list.

    `currency_ids` (from company_currency_ids()) saves a query per row of a list.
    """
    program = dp.program
    if currency_ids is None:
        currency_ids = company_currency_ids(company=dp.company)
    rule_conditions = list(dp.rule.conditions.all()) if dp.rule is not None else []
    status = mapping.status_of(program)
    return {
        "referral_program_id": dp.public_id,
        "referral_program_title": program.name,
        "referfrom_rewards_type": mapping.reward_type_of(program.referrer_reward_kind),
        "referto_rewards_type": mapping.reward_type_of(program.referee_reward_kind),
        "referral_for": mapping.referral_for_of(program.audience),
        "expiry_date": mapping.timestamp_of(program.end_date),
        "min_referrals": program.min_referrals,
        "max_referral": program.max_referrals,
        "referral_reward_users": mapping.reward_users_of(program.rewarded),
        "referral_condition": conditions.render(dp.rule, rule_conditions),
        "message": program.message,
        "currency_id": currency_ids.get(program.currency_id),
        "status": status,
        "is_active": 1 if status == mapping.ACTIVE else 0,
        "start_date": mapping.timestamp_of(program.start_date),
        "created_at": int(dp.created_at.timestamp()),
    }
