"""Writes for referral programs, their rules and rule conditions: every door calls these."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Client
from common.actors import Actor
from common.groups import (
    grouped_condition_create,
    grouped_condition_update,
    grouped_conditions_delete,
)
from common.services import history_record, model_create, model_delete_many, model_update
from referrals.models import (
    PARTNER_PLACEHOLDER,
    LinkClick,
    Partnership,
    Payout,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
    partner_code,
)

DEFAULT_TAKEN = "Only one referral program of a provider is assigned by default."


def _one_default(fn):
    """The partial unique index decides, also between two concurrent saves; named as the field."""
    taken = ValidationError({"assign_by_default": ValidationError(DEFAULT_TAKEN, code="unique")})
    try:
        with transaction.atomic():
            return fn()
    except ValidationError as exc:
        if DEFAULT_TAKEN in exc.messages:
            raise taken from exc
        raise
    except IntegrityError as exc:
        if "referralprogram_one_default_per_provider" in str(exc):
            raise taken from exc
        raise


# Programs ---------------------------------------------------------------------------------------


def program_create(*, actor: Actor, **fields: Any) -> ReferralProgram:
    return _one_default(lambda: model_create(model=ReferralProgram, data=fields, actor=actor))


def program_update(*, program: ReferralProgram, actor: Actor, **fields: Any) -> ReferralProgram:
    return _one_default(lambda: model_update(instance=program, data=fields, actor=actor)[0])


@transaction.atomic
def program_delete_many(*, programs: Iterable[ReferralProgram], actor: Actor) -> int:
    """All or none: a program with referrals keeps them; set it inactive instead."""
    programs = list(programs)
    busy = sorted({p.name for p in programs if p.referrals.exists()})
    if busy:
        raise ValidationError(
            {"elid": f"{', '.join(busy)} has referrals; make it inactive instead."}
        )
    return model_delete_many(objects=programs, actor=actor)


# Rules ------------------------------------------------------------------------------------------


@transaction.atomic
def rule_create(*, program: ReferralProgram, actor: Actor, **fields: Any) -> Rule:
    return model_create(model=Rule, data={"program": program, **fields}, actor=actor, root=program)


@transaction.atomic
def rule_update(*, rule: Rule, actor: Actor, **fields: Any) -> Rule:
    return model_update(instance=rule, data=fields, actor=actor, root=rule.program)[0]


@transaction.atomic
def rule_delete_many(*, rules: Iterable[Rule], actor: Actor) -> int:
    rules = list(rules)
    paid = sorted({r.name for r in rules if r.rewards.exists()})
    if paid:
        raise ValidationError({"elid": f"{', '.join(paid)} has rewards; make it inactive instead."})
    return model_delete_many(objects=rules, actor=actor, root_of=lambda r: r.program)


# Rule conditions --------------------------------------------------------------------------------


@transaction.atomic
def rule_condition_create(
    *, rule: Rule, actor: Actor, group: str | None = None, groupname: str | None = None, **fields
) -> RuleCondition:
    return grouped_condition_create(
        model=RuleCondition,
        owner={"rule": rule},
        actor=actor,
        root=rule.program,
        group=group,
        groupname=groupname,
        **fields,
    )


@transaction.atomic
def rule_condition_update(
    *,
    condition: RuleCondition,
    actor: Actor,
    group: str | None = None,
    groupname: str | None = None,
    **fields: Any,
) -> RuleCondition:
    return grouped_condition_update(
        condition=condition,
        owner={"rule": condition.rule},
        actor=actor,
        root=condition.rule.program,
        group=group,
        groupname=groupname,
        **fields,
    )


@transaction.atomic
def rule_condition_delete_many(*, conditions: Iterable[RuleCondition], actor: Actor) -> int:
    return grouped_conditions_delete(
        conditions=conditions, actor=actor, root_of=lambda c: c.rule.program
    )


# Attribution ------------------------------------------------------------------------------------


class AttachRefused(Exception):
    """A client could not be attached to a partner; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _admission_refusals(
    program: ReferralProgram, client: Client, at: datetime.datetime
) -> list[str]:
    """Why `client` may not take part in `program` at `at` (empty when they may): one rule for
    attaching referred clients and enrolling partners."""
    reasons = []
    if client.provider_id != program.provider_id:
        reasons.append("the client is not a client of the program's provider")
    if not _program_live(program, timezone.localdate(at)):
        reasons.append(f"the program {program.name} is not running")
    outside = (
        program.account_group_id is not None
        and not client.groups.filter(pk=program.account_group_id).exists()
    )
    if outside:
        reasons.append("the client is outside the program's group")
    return reasons


def _program_live(program: ReferralProgram, day: datetime.date) -> bool:
    ended = program.end_date is not None and day > program.end_date
    return (
        program.status == ReferralProgram.Status.ACTIVE and program.start_date <= day and not ended
    )


@transaction.atomic
def referral_attach(
    *,
    client: Client,
    partner_id: int,
    program: ReferralProgram,
    source: str,
    actor: Actor,
    at: datetime.datetime | None = None,
) -> Referral:
    """Attach `client` to partner `partner_id` in `program`, or refuse with the reason."""
    at = at or timezone.now()
    # Lock the client row so two attachments of one client queue; the one-to-one decides anyway.
    client = Client.objects.select_for_update().get(pk=client.pk)
    partner = Client.objects.filter(pk=partner_id, provider_id=program.provider_id).first()
    refusals = [
        (partner is None, f"there is no partner {partner_id} in this program"),
        (partner_id == client.pk, "a client cannot refer themselves"),
        *((True, reason) for reason in _admission_refusals(program, client, at)),
        (Referral.objects.filter(client=client).exists(), "the client has been referred already"),
        (
            source == Referral.Source.PROMOCODE
            and (client.services.exists() or client.expenses.exists()),
            "a referral code counts only on the client's first order",
        ),
        (
            partner is not None
            and program.max_referrals is not None
            and Referral.objects.filter(program=program, partner=partner).count()
            >= program.max_referrals,
            f"the partner has brought the most referrals the program allows ({program.max_referrals})",
        ),
    ]
    for refused, reason in refusals:
        if refused:
            raise AttachRefused(reason)
    referral = Referral(
        program=program, partner=partner, client=client, source=source, joined_at=at
    )
    referral.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            referral.save()
    except IntegrityError:
        raise AttachRefused("the client has been referred already") from None
    history_record(
        obj=program, actor=actor, desc=f"{client} has been referred by {partner} ({source})"
    )
    return referral


def program_for_code(*, provider_id: int, code: str) -> tuple[ReferralProgram, int] | None:
    """The program whose template the code fills, and the partner id it names."""
    code = code.strip().upper()
    for program in ReferralProgram.objects.filter(provider_id=provider_id).exclude(promocode=""):
        head, _, tail = program.promocode.upper().partition(PARTNER_PLACEHOLDER)
        middle = code[len(head) : len(code) - len(tail) if tail else None]
        if code.startswith(head) and code.endswith(tail) and middle.isdigit() and len(middle) < 19:
            return program, int(middle)
    return None


def referral_attach_by_code(
    *, client: Client, code: str, actor: Actor, at: datetime.datetime | None = None
) -> Referral:
    found = program_for_code(provider_id=client.provider_id, code=code)
    if found is None:
        raise AttachRefused(f"{code.strip().upper()} is no partner code of a referral program")
    program, partner_id = found
    return referral_attach(
        client=client,
        partner_id=partner_id,
        program=program,
        source=Referral.Source.PROMOCODE,
        actor=actor,
        at=at,
    )


# Enrolment and link clicks -----------------------------------------------------------------------

# How long a recorded link click still attaches the visitor when they register.
CLICK_LIFETIME = datetime.timedelta(days=30)


@transaction.atomic
def partner_enrol(
    *,
    program: ReferralProgram,
    partner: Client,
    actor: Actor,
    at: datetime.datetime | None = None,
) -> Partnership:
    """Make `partner` a partner of `program`, once, with the code and link they hand out."""
    existing = Partnership.objects.filter(program=program, partner=partner).first()
    if existing is not None:
        return existing
    if partner.provider_id != program.provider_id:
        raise ValidationError({"partner": "The client is not a client of the program's provider."})
    partnership = Partnership(
        program=program,
        partner=partner,
        code=partner_code(program, partner.pk),
        enrolled_at=at or timezone.now(),
    )
    partnership.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            partnership.save()
    except IntegrityError:
        return Partnership.objects.get(program=program, partner=partner)
    history_record(
        obj=program,
        actor=actor,
        desc=f"{partner} has been enrolled as a partner ({partnership.code})",
    )
    return partnership


def link_click_record(
    *,
    program: ReferralProgram,
    partner_id: int,
    visitor: str,
    at: datetime.datetime | None = None,
) -> LinkClick:
    """Remember that `visitor` followed partner `partner_id`'s link, until they register.

    No history line: clicks are traffic, not operator changes.
    """
    partner = Client.objects.filter(pk=partner_id, provider_id=program.provider_id).first()
    if partner is None:
        raise ValidationError({"partner": f"There is no partner {partner_id} in this program."})
    click = LinkClick(
        program=program, partner=partner, visitor=visitor.strip(), clicked_at=at or timezone.now()
    )
    click.full_clean()
    click.save()
    return click


@transaction.atomic
def referral_attach_by_click(
    *, client: Client, visitor: str, actor: Actor, at: datetime.datetime | None = None
) -> Referral:
    """Attach a registering client to the partner whose link they followed last."""
    at = at or timezone.now()
    clicks = LinkClick.objects.filter(
        visitor=visitor.strip(),
        program__provider_id=client.provider_id,
        referral__isnull=True,
        clicked_at__gt=at - CLICK_LIFETIME,
        clicked_at__lte=at,
    )
    click = clicks.select_related("program").order_by("-clicked_at", "-pk").first()
    if click is None:
        raise AttachRefused("no partner link was followed by this visitor")
    referral = referral_attach(
        client=client,
        partner_id=click.partner_id,
        program=click.program,
        source=Referral.Source.LINK,
        actor=actor,
        at=at,
    )
    clicks.update(referral=referral)
    return referral


def client_registered(
    *, client: Client, actor: Actor, visitor: str = "", at: datetime.datetime | None = None
) -> Referral | None:
    """What a new client means to referrals: enrolment as a partner of the provider's default
    program, and attachment to the partner whose link they followed (None when there is none)."""
    at = at or timezone.now()
    default = ReferralProgram.objects.filter(
        provider_id=client.provider_id, assign_by_default=True
    ).first()
    if default is not None and not _admission_refusals(default, client, at):
        partner_enrol(program=default, partner=client, actor=actor, at=at)
    if not visitor.strip():
        return None
    try:
        return referral_attach_by_click(client=client, visitor=visitor, actor=actor, at=at)
    except AttachRefused:
        return None


# Payouts ----------------------------------------------------------------------------------------


@transaction.atomic
def payouts_create(*, program: ReferralProgram, partner: Client, actor: Actor) -> list[Payout]:
    """Pay a partner's unpaid rewards of a program: one payout per currency, each reward once."""
    unpaid = list(
        Reward.objects.select_for_update()
        .filter(rule__program=program, partner=partner, payout__isnull=True)
        .order_by("pk")
    )
    by_currency: dict[int, list[Reward]] = {}
    for reward in unpaid:
        by_currency.setdefault(reward.currency_id, []).append(reward)
    payouts = []
    for currency_id, rewards in sorted(by_currency.items()):
        payout = Payout(
            program=program,
            partner=partner,
            currency_id=currency_id,
            amount=sum((r.amount for r in rewards), Decimal(0)),
        )
        payout.full_clean()
        payout.save()
        Reward.objects.filter(pk__in=[r.pk for r in rewards], payout__isnull=True).update(
            payout=payout
        )
        history_record(
            obj=program,
            actor=actor,
            desc=f"Paid {payout.amount} {payout.currency} to {partner} for {len(rewards)} rewards",
        )
        payouts.append(payout)
    return payouts
