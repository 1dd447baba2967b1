"""Writes for referral programs, their rules and rule conditions: every door calls these."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
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
    AccrualMark,
    LinkClick,
    Partnership,
    Payout,
    Referral,
    ReferralProgram,
    Reward,
    Rule,
    RuleCondition,
    partner_code,
    partner_link,
)
from referrals.selectors import credited_rewards

DEFAULT_TAKEN = "Only one referral program of a provider is assigned by default."
TITLE_TAKEN = "A program with this title exists already."

# The unique constraints a program save can meet, each named as the field it is about: the
# constraint decides, also between two concurrent saves (full_clean only says it early).
PROGRAM_UNIQUE = {
    "referralprogram_one_default_per_provider": ("assign_by_default", DEFAULT_TAKEN),
    "referralprogram_unique_title": ("name", TITLE_TAKEN),
}


def _program_saved(fn):
    try:
        with transaction.atomic():
            return fn()
    except ValidationError as exc:
        for field, message in PROGRAM_UNIQUE.values():
            if message in exc.messages:
                raise ValidationError({field: ValidationError(message, code="unique")}) from exc
        raise
    except IntegrityError as exc:
        for constraint, (field, message) in PROGRAM_UNIQUE.items():
            if constraint in str(exc):
                raise ValidationError({field: ValidationError(message, code="unique")}) from exc
        raise


def _accrual_restart(rules: QuerySet[Rule]) -> None:
    """What these rules pay on has changed: accrual reads their programs from the start again
    (the unique key keeps every reward already written)."""
    AccrualMark.objects.filter(rule__in=rules).update(
        expenses_through=0,
        referrals_through=0,
        services_through=0,
        generation=F("generation") + 1,
    )


# Program and rule fields that change which expenses earn; other changes (a name, an amount)
# apply to what accrues next and need no re-read.
PROGRAM_ACCRUAL_FIELDS = {
    "start_date",
    "end_date",
    "account_group_restrict",
    "rewarded",
    "min_referrals",
    "currency",
    "provider",
}
RULE_ACCRUAL_FIELDS = {"reward_type", "schedule"}


# Programs ---------------------------------------------------------------------------------------


def program_create(*, actor: Actor, **fields: Any) -> ReferralProgram:
    return _program_saved(lambda: model_create(model=ReferralProgram, data=fields, actor=actor))


def program_update(*, program: ReferralProgram, actor: Actor, **fields: Any) -> ReferralProgram:
    def update():
        old = {name: getattr(program, name) for name in PROGRAM_ACCRUAL_FIELDS}
        saved = model_update(instance=program, data=fields, actor=actor)[0]
        if any(getattr(saved, name) != old[name] for name in PROGRAM_ACCRUAL_FIELDS):
            _accrual_restart(saved.rules.all())
        return saved

    return _program_saved(update)


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
    old = {name: getattr(rule, name) for name in RULE_ACCRUAL_FIELDS}
    rule = model_update(instance=rule, data=fields, actor=actor, root=rule.program)[0]
    if any(getattr(rule, name) != old[name] for name in RULE_ACCRUAL_FIELDS):
        _accrual_restart(Rule.objects.filter(pk=rule.pk))
    return rule


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
    _accrual_restart(Rule.objects.filter(pk=rule.pk))
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
    condition, changes = grouped_condition_update(
        condition=condition,
        owner={"rule": condition.rule},
        actor=actor,
        root=condition.rule.program,
        group=group,
        groupname=groupname,
        **fields,
    )
    if changes:
        _accrual_restart(Rule.objects.filter(pk=condition.rule_id))
    return condition


@transaction.atomic
def rule_condition_delete_many(*, conditions: Iterable[RuleCondition], actor: Actor) -> int:
    conditions = list(conditions)
    _accrual_restart(Rule.objects.filter(pk__in={c.rule_id for c in conditions}))
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
    if not ReferralProgram.objects.live(timezone.localdate(at)).filter(pk=program.pk).exists():
        reasons.append(f"the program {program.name} is not running")
    outside = (
        program.account_group_id is not None
        and not client.groups.filter(pk=program.account_group_id).exists()
    )
    if outside:
        reasons.append("the client is outside the program's group")
    return reasons


def _first_order_refusal(client: Client) -> str | None:
    if client.services.exists() or client.expenses.exists():
        return "a referral code counts only on the client's first order"
    return None


@transaction.atomic
def referral_attach(
    *,
    client: Client,
    partner_id: int,
    program: ReferralProgram,
    source: str,
    actor: Actor,
    at: datetime.datetime | None = None,
    via: str = "",
) -> Referral:
    """Attach `client` to partner `partner_id` in `program`, or refuse with the reason.

    A partner code binds only a client with no services and no charges yet (it works on the first
    order only). A link or a hand attachment binds a client who has bought already too, and like
    every referral it earns only on expenses from the moment it joined (`joined_at`): nothing
    before the attachment ever earns.
    """
    at = at or timezone.now()
    # Lock the referred client and the partner, in primary-key order: two attachments of one
    # client queue on the client, and every attachment to one partner queues on the partner, so
    # the partner's referrals are counted after the last attachment committed (max_referrals is
    # exact under any concurrency).
    locked = {
        c.pk: c
        for c in Client.objects.select_for_update()
        .filter(pk__in={client.pk, partner_id})
        .order_by("pk")
    }
    client = locked[client.pk]
    partner = locked.get(partner_id)
    if partner is not None and partner.provider_id != program.provider_id:
        partner = None
    checks = [
        lambda: partner is None and f"there is no partner {partner_id} in this program",
        lambda: partner_id == client.pk and "a client cannot refer themselves",
        lambda: "; ".join(_admission_refusals(program, client, at)),
        lambda: (
            Referral.objects.filter(client=client).exists()
            and "the client has been referred already"
        ),
        lambda: source == Referral.Source.PROMOCODE and _first_order_refusal(client),
        lambda: (
            program.max_referrals is not None
            and Referral.objects.filter(program=program, partner=partner).count()
            >= program.max_referrals
            and f"the partner has brought the most referrals the program allows "
            f"({program.max_referrals})"
        ),
    ]
    for check in checks:
        reason = check()
        if reason:
            raise AttachRefused(reason)
    referral = Referral(
        program=program, partner=partner, client=client, source=source, joined_at=at, via=via
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
        via=code.strip().upper(),
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
        via=partner_link(click.program, click.partner_id),
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


def _due(program: ReferralProgram, partner: Client, through: int | None) -> QuerySet[Reward]:
    due = credited_rewards(program=program, partner=partner).filter(payout__isnull=True)
    return due.filter(pk__lte=through) if through is not None else due


@transaction.atomic
def payouts_create_many(
    *,
    partners: Iterable[tuple[ReferralProgram, Client]],
    reference: str,
    actor: Actor,
    through: int | None = None,
    confirmed: dict[str, Decimal] | None = None,
) -> list[Payout]:
    """Pay each (program, partner)'s unpaid rewards: one payout per currency, each reward once,
    every partner or none.

    `reference` names the payment (e.g. the bank transfer's or batch's id) on every payout made;
    who paid is the actor. `through` (the highest reward id the operator saw) leaves rewards
    accrued since out; `confirmed` (per currency, what the operator confirmed) refuses the whole
    payment when what is due differs, e.g. because someone paid some of it meanwhile.
    """
    reference = reference.strip()
    if not reference:
        raise ValidationError({"reference": "Give the payout a reference."})
    pairs = sorted({(p.pk, c.pk): (p, c) for p, c in partners}.items())
    payouts: list[Payout] = []
    for _, (program, partner) in pairs:
        # Lock the rows to pay, in id order; a concurrent payment of the same rewards waits and
        # then finds them paid.
        rewards = list(
            _due(program, partner, through)
            .select_for_update(of=("self",))
            .select_related("currency")
            .order_by("pk")
        )
        by_currency: dict[int, list[Reward]] = {}
        for reward in rewards:
            by_currency.setdefault(reward.currency_id, []).append(reward)
        for currency_id, paid in sorted(by_currency.items()):
            payout = Payout(
                program=program,
                partner=partner,
                currency_id=currency_id,
                amount=sum((r.amount for r in paid), Decimal(0)),
                paid_by=actor.username,
                reference=reference,
            )
            payout.full_clean()
            payout.save()
            marked = Reward.objects.filter(pk__in=[r.pk for r in paid], payout__isnull=True)
            if marked.update(payout=payout) != len(paid):
                raise AssertionError("locked rewards were paid by someone else")
            history_record(
                obj=program,
                actor=actor,
                desc=f"Paid {payout.amount.normalize():f} {paid[0].currency} to {partner} for "
                f"{len(paid)} rewards (reference {reference})",
            )
            payouts.append(payout)
    if confirmed is not None:
        due: dict[str, Decimal] = {}
        for payout in payouts:
            iso = payout.currency.iso
            due[iso] = due.get(iso, Decimal(0)) + payout.amount
        if {k: v for k, v in due.items() if v} != {k: v for k, v in confirmed.items() if v}:
            raise ValidationError(
                "What is due has changed since it was confirmed (someone paid part of it "
                "meanwhile): nothing was paid; review the amounts again."
            )
    return payouts


def payouts_create(
    *, program: ReferralProgram, partner: Client, reference: str, actor: Actor, **options: Any
) -> list[Payout]:
    """Pay one partner's unpaid rewards of a program (see payouts_create_many)."""
    return payouts_create_many(
        partners=[(program, partner)], reference=reference, actor=actor, **options
    )
