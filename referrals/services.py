"""Writes for referral programs, their rules and rule conditions: every door calls these."""

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError, QuerySet
from django.utils import timezone

from billing.models import Client
from common.actors import Actor
from common.groups import (
    condition_group_create,
    condition_group_update,
    condition_groups_delete,
    grouped_condition_create,
    grouped_condition_update,
    grouped_conditions_delete,
)
from common.services import history_record, model_create, model_delete_many, model_update
from referrals import screens, selectors
from referrals.models import (
    PARTNER_PLACEHOLDER,
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
    partner_code,
    partner_link,
)

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


def _delete_unless_in_use(
    *,
    objects: Iterable[ReferralProgram | Rule],
    actor: Actor,
    has: str,
    in_use: Callable[[Any], bool],
    root_of: Callable[[Any], Any] = lambda obj: None,
) -> int:
    """Delete all of `objects` or none: any that `has` rows (`in_use`) is kept, saying so. Checked
    first, and again when the delete meets rows written since the check (an attachment or an
    accrual that committed meanwhile): refused the same way, never a 500."""
    objects = list(objects)

    def refusal() -> ValidationError | None:
        busy = sorted({obj.name for obj in objects if in_use(obj)})
        if not busy:
            return None
        return ValidationError({"elid": f"{', '.join(busy)} has {has}; make it inactive instead."})

    if found := refusal():
        raise found
    try:
        with transaction.atomic():
            return model_delete_many(objects=objects, actor=actor, root_of=root_of)
    except (ProtectedError, IntegrityError):
        if found := refusal():
            raise found from None
        raise


@transaction.atomic
def program_delete_many(*, programs: Iterable[ReferralProgram], actor: Actor) -> int:
    """All or none: a program with referrals keeps them; set it inactive instead."""
    return _delete_unless_in_use(
        objects=programs, actor=actor, has="referrals", in_use=lambda p: p.referrals.exists()
    )


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
    return _delete_unless_in_use(
        objects=rules,
        actor=actor,
        has="rewards",
        in_use=lambda r: r.rewards.exists(),
        root_of=lambda r: r.program,
    )


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


@transaction.atomic
def rule_condition_group_create(*, rule: Rule, name: str, actor: Actor) -> RuleConditionGroup:
    _accrual_restart(Rule.objects.filter(pk=rule.pk))
    return condition_group_create(
        model=RuleConditionGroup, owner={"rule": rule}, name=name, actor=actor, root=rule.program
    )


@transaction.atomic
def rule_condition_group_update(
    *, group: RuleConditionGroup, actor: Actor, **fields: Any
) -> RuleConditionGroup:
    _accrual_restart(Rule.objects.filter(pk=group.rule_id))
    return condition_group_update(group=group, actor=actor, root=group.rule.program, **fields)


@transaction.atomic
def rule_condition_group_delete_many(*, groups: Iterable[RuleConditionGroup], actor: Actor) -> int:
    """Delete groups; their conditions stay, each AND-ed on its own."""
    groups = list(groups)
    _accrual_restart(Rule.objects.filter(pk__in={g.rule_id for g in groups}))
    return condition_groups_delete(groups=groups, actor=actor, root_of=lambda g: g.rule.program)


# Attribution ------------------------------------------------------------------------------------


class AttachRefused(Exception):
    """A client could not be attached to a partner; `reason` says why, `screen` names the fraud
    screen that refused it (None for the program's plain rules)."""

    def __init__(self, reason: str, screen: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.screen = screen


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


def referral_attach(
    *,
    client: Client,
    partner_id: int,
    program: ReferralProgram,
    source: str,
    actor: Actor,
    at: datetime.datetime | None = None,
    via: str = "",
    address: str | None = None,
    then: Callable[[Referral], object] | None = None,
) -> Referral:
    """Attach `client` to partner `partner_id` in `program`, or refuse with the reason.

    A partner code binds only a client with no services and no charges yet (it works on the first
    order only). A link or a hand attachment binds a client who has bought already too, and like
    every referral it earns only on expenses from the moment it joined (`joined_at`): nothing
    before the attachment ever earns. The fraud screens (referrals.screens) refuse self-referrals
    by id or e-mail, partners in the restricted group and too many link attachments from one
    `address` (the visitor's) a day; such a refusal is recorded for the operator (an
    AttachmentRefusal row and a history line), in the caller's transaction if there is one.
    `then` runs inside the attachment's transaction once it is saved.
    """
    at = at or timezone.now()
    try:
        return _attach(
            client=client,
            partner_id=partner_id,
            program=program,
            source=source,
            actor=actor,
            at=at,
            via=via,
            address=address,
            then=then,
        )
    except AttachRefused as refusal:
        if refusal.screen is not None:
            _refusal_record(
                program=program,
                partner_id=partner_id,
                client=client,
                refusal=refusal,
                source=source,
                address=address,
                at=at,
                actor=actor,
            )
        raise


@transaction.atomic
def _attach(
    *,
    client: Client,
    partner_id: int,
    program: ReferralProgram,
    source: str,
    actor: Actor,
    at: datetime.datetime,
    via: str,
    address: str | None,
    then: Callable[[Referral], object] | None,
) -> Referral:
    # Lock the referred client and the partner, in primary-key order: two attachments of one
    # client queue on the client, and every attachment to one partner queues on the partner, so
    # the partner's referrals are counted after the last attachment committed (max_referrals and
    # the address screen are exact under any concurrency).
    locked = {
        c.pk: c
        for c in Client.objects.select_for_update()
        .filter(pk__in={client.pk, partner_id})
        .order_by("pk")
    }
    client = locked[client.pk]
    partner = locked.get(partner_id)
    if partner is None or partner.provider_id != program.provider_id:
        raise AttachRefused(f"there is no partner {partner_id} in this program")
    attempt = screens.Attempt(
        program=program, partner=partner, client=client, source=source, address=address, at=at
    )
    checks = [
        lambda: screens.screened(attempt),
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
        found = check()
        if isinstance(found, tuple):
            raise AttachRefused(found[1], screen=found[0])
        if found:
            raise AttachRefused(found)
    referral = Referral(
        program=program,
        partner=partner,
        client=client,
        source=source,
        joined_at=at,
        via=via,
        address=address or None,
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
    if then is not None:
        then(referral)
    return referral


@transaction.atomic
def _refusal_record(
    *,
    program: ReferralProgram,
    partner_id: int,
    client: Client,
    refusal: AttachRefused,
    source: str,
    address: str | None,
    at: datetime.datetime,
    actor: Actor,
) -> AttachmentRefusal:
    refused = AttachmentRefusal.objects.create(
        program=program,
        partner_id=partner_id,
        client=client,
        screen=refusal.screen,
        reason=refusal.reason[:300],
        source=source,
        address=address or None,
        refused_at=at,
    )
    history_record(
        obj=program,
        actor=actor,
        desc=f"Refused to attach {client} to partner {partner_id} ({source}): {refusal.reason}",
    )
    return refused


def program_for_code(*, provider_id: int, code: str) -> tuple[ReferralProgram, int] | None:
    """The program whose template the code fills, and the partner id it names."""
    code = code.strip().upper()
    for program in ReferralProgram.objects.filter(provider_id=provider_id).exclude(promocode=""):
        head, _, tail = program.promocode.upper().partition(PARTNER_PLACEHOLDER)
        middle = code[len(head) : len(code) - len(tail) if tail else None]
        # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and other
        # scripts' digits (a second spelling of the same partner's code).
        digits = middle.isascii() and middle.isdigit()
        if code.startswith(head) and code.endswith(tail) and digits and len(middle) < 19:
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
    address: str | None = None,
) -> LinkClick:
    """Remember that `visitor` (from `address`) followed partner `partner_id`'s link, until they
    register.

    No history line: clicks are traffic, not operator changes.
    """
    partner = Client.objects.filter(pk=partner_id, provider_id=program.provider_id).first()
    if partner is None:
        raise ValidationError({"partner": f"There is no partner {partner_id} in this program."})
    click = LinkClick(
        program=program,
        partner=partner,
        visitor=visitor.strip(),
        clicked_at=at or timezone.now(),
        address=address or None,
    )
    click.full_clean()
    click.save()
    return click


def link_click_record_by_link(
    *, link: str, visitor: str, at: datetime.datetime | None = None, address: str | None = None
) -> LinkClick:
    """Record a click on `link` (a program's URL with ?from=PARTNER_ID, see
    selectors.link_target); a ValidationError on `link` when it is no partner link."""
    program, partner_id = selectors.link_target(link)
    try:
        return link_click_record(
            program=program, partner_id=partner_id, visitor=visitor, at=at, address=address
        )
    except ValidationError:
        raise ValidationError({"link": "This is no partner link of a referral program."}) from None


def referral_attach_by_click(
    *, client: Client, visitor: str, actor: Actor, at: datetime.datetime | None = None
) -> Referral:
    """Attach a registering client to the partner whose link they followed last (from the
    address they clicked from); the clicks of that visitor are spent with it."""
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
    return referral_attach(
        client=client,
        partner_id=click.partner_id,
        program=click.program,
        source=Referral.Source.LINK,
        actor=actor,
        at=at,
        via=partner_link(click.program, click.partner_id),
        address=click.address,
        then=lambda referral: clicks.update(referral=referral),
    )


def registration_attach(
    *,
    client: Client,
    actor: Actor,
    visitor: str = "",
    partner_id: int | None = None,
    address: str | None = None,
    at: datetime.datetime | None = None,
) -> Referral | None:
    """Attach a client who is registering to the partner whose link they followed: the click
    recorded for `visitor`, else partner `partner_id` by link (the program the partner is enrolled
    in at the client's provider, else its default program; `address` is the visitor's). A refusal
    by the attachment's rules leaves them unattached (None, recorded when a fraud screen refused);
    a click or partner that does not exist is a ValidationError on `visitor` or `partner`."""
    visitor = visitor.strip()
    try:
        if visitor:
            if not LinkClick.objects.filter(visitor=visitor).exists():
                raise ValidationError({"visitor": f"There is no link click {visitor!r}."})
            return referral_attach_by_click(client=client, visitor=visitor, actor=actor, at=at)
        if partner_id is not None:
            program = selectors.program_of_partner(
                provider_id=client.provider_id, partner_id=partner_id
            )
            return referral_attach(
                client=client,
                partner_id=partner_id,
                program=program,
                source=Referral.Source.LINK,
                actor=actor,
                at=at,
                via=partner_link(program, partner_id),
                address=address,
            )
    except AttachRefused:
        return None
    return None


def client_registered(
    *,
    client: Client,
    actor: Actor,
    visitor: str = "",
    partner_id: int | None = None,
    address: str | None = None,
    at: datetime.datetime | None = None,
) -> Referral | None:
    """What a new client means to referrals: enrolment as a partner of the provider's default
    program, and attachment to the partner whose link they followed (registration_attach; None
    when there is none)."""
    at = at or timezone.now()
    default = ReferralProgram.objects.filter(
        provider_id=client.provider_id, assign_by_default=True
    ).first()
    if default is not None and not _admission_refusals(default, client, at):
        partner_enrol(program=default, partner=client, actor=actor, at=at)
    return registration_attach(
        client=client,
        actor=actor,
        visitor=visitor,
        partner_id=partner_id,
        address=address,
        at=at,
    )


# Payouts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    """What a payment made: its batch (None when nothing was paid), the payouts, and the partners
    it skipped with the reason (a balance below the program's payout minimum, or none to pay)."""

    batch: PayoutBatch | None
    payouts: list[Payout]
    skipped: list[selectors.PayoutSkip]


def _batch_create(*, reference: str, actor: Actor) -> PayoutBatch:
    batch = PayoutBatch(reference=reference, created_by=actor.username)
    taken = ValidationError(
        {"reference": f"The reference {reference} names an earlier payment; give this one its own."}
    )
    if PayoutBatch.objects.filter(reference=reference).exists():
        raise taken
    batch.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            batch.save()
    except IntegrityError:
        raise taken from None
    history_record(obj=batch, actor=actor, desc=f"Payout batch {reference} has been created")
    return batch


@transaction.atomic
def payouts_create_many(
    *,
    partners: Iterable[tuple[ReferralProgram, Client]],
    reference: str,
    actor: Actor,
    through: int | None = None,
    confirmed: dict[str, Decimal] | None = None,
    at: datetime.datetime | None = None,
) -> Payment:
    """Pay each (program, partner)'s payable balance at `at` (now by default; the admin passes the
    moment its confirmation page showed): one payout per currency in one batch
    named `reference`, each ledger row once, every partner or none.

    What is payable: the unpaid rows whose hold is over at `at` (selectors.payable_rows), reversing
    rows included, so a reversal of a reward paid earlier is deducted here. A balance is paid when
    it is above zero and, in the program's currency, reaches the program's `payout_minimum`;
    others are skipped and said so (Payment.skipped). `through` (the highest row id the operator
    saw) leaves rows accrued since out; `confirmed` (per currency, what the operator confirmed)
    refuses the whole payment when what would be paid differs, e.g. because someone paid some of
    it meanwhile. Who paid is the actor; each payout keeps the partner's payout details as they
    were.
    """
    reference = reference.strip()
    if not reference:
        raise ValidationError({"reference": "Give the payout a reference."})
    at = at or timezone.now()
    pairs = sorted({(p.pk, c.pk): (p, c) for p, c in partners}.items())
    batch: PayoutBatch | None = None
    payouts: list[Payout] = []
    skipped: list[selectors.PayoutSkip] = []
    for _, (program, partner) in pairs:
        # Lock the rows to pay, in id order; a concurrent payment of the same rows waits and then
        # finds them paid. Rows accrued meanwhile (reversals too) are for the next payment.
        rows = list(
            selectors.payable_rows(program=program, partner=partner, at=at, through=through)
            .select_for_update(of=("self",))
            .select_related("currency")
            .order_by("pk")
        )
        by_currency: dict[int, list[Reward]] = {}
        for row in rows:
            by_currency.setdefault(row.currency_id, []).append(row)
        details = selectors.payout_details_of(program=program, partner=partner)
        for currency_id, paid in sorted(by_currency.items()):
            currency = paid[0].currency
            total = sum((r.amount for r in paid), Decimal(0))
            skip = selectors.payout_skip(program, partner, currency, total)
            if skip is not None:
                skipped.append(skip)
                continue
            if batch is None:
                batch = _batch_create(reference=reference, actor=actor)
            payout = Payout(
                batch=batch,
                program=program,
                partner=partner,
                currency_id=currency_id,
                amount=total,
                paid_by=actor.username,
                payout_details=details,
                rewards_count=len(paid),
            )
            payout.full_clean()
            payout.save()
            marked = Reward.objects.filter(pk__in=[r.pk for r in paid], payout__isnull=True)
            if marked.update(payout=payout) != len(paid):
                raise AssertionError("locked rewards were paid by someone else")
            history_record(
                obj=program,
                actor=actor,
                desc=f"Paid {payout.amount.normalize():f} {currency} to {partner} for "
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
    return Payment(batch=batch, payouts=payouts, skipped=skipped)


def payouts_create(
    *, program: ReferralProgram, partner: Client, reference: str, actor: Actor, **options: Any
) -> Payment:
    """Pay one partner's payable balance of a program (see payouts_create_many)."""
    return payouts_create_many(
        partners=[(program, partner)], reference=reference, actor=actor, **options
    )


# What a payout's status may become from each status: forward only.
STATUS_MOVES = {
    Payout.Status.PENDING: {Payout.Status.SENT, Payout.Status.FAILED},
    Payout.Status.SENT: {Payout.Status.FAILED},
    Payout.Status.FAILED: set(),
}


@transaction.atomic
def payouts_mark_many(
    *,
    payouts: Iterable[Payout],
    status: str,
    actor: Actor,
    at: datetime.datetime | None = None,
) -> list[Payout]:
    """Mark payouts `sent` or `failed`, all or none; those in that status already are left as
    they are. A failed payout gives its rewards back: they are payable again, and the next payment
    pays them (to the partner's payout details as they are then).

    Each payout is locked, in id order, and its status moved by a guarded UPDATE from the status
    read under the lock (the database refuses a move backwards too)."""
    if status not in (Payout.Status.SENT, Payout.Status.FAILED):
        raise ValidationError({"status": "A payout is marked sent or failed."})
    at = at or timezone.now()
    ids = sorted({p.pk for p in payouts})
    locked = list(
        Payout.objects.select_for_update()
        .filter(pk__in=ids)
        .select_related("program", "partner", "currency", "batch")
        .order_by("pk")
    )
    moved = []
    for payout in locked:
        if payout.status == status:
            continue
        if status not in STATUS_MOVES[payout.status]:
            raise ValidationError(
                {"status": f"Payout {payout.pk} has {payout.status}: it cannot become {status}."}
            )
        changed = Payout.objects.filter(pk=payout.pk, status=payout.status).update(
            status=status, status_changed_at=at
        )
        if changed != 1:
            raise AssertionError("a locked payout's status moved under us")
        given_back = 0
        if status == Payout.Status.FAILED:
            given_back = Reward.objects.filter(payout=payout).update(payout=None)
        payout.status, payout.status_changed_at = status, at
        what = f"; its {given_back} rewards are payable again" if given_back else ""
        history_record(
            obj=payout.program,
            actor=actor,
            desc=f"Payout {payout.pk} of {payout.amount.normalize():f} {payout.currency} to "
            f"{payout.partner} (reference {payout.batch.reference}) has been marked {status}"
            f"{what}",
        )
        moved.append(payout)
    return moved


@transaction.atomic
def payout_batch_mark(
    *, batch: PayoutBatch, status: str, actor: Actor, at: datetime.datetime | None = None
) -> list[Payout]:
    """Mark every payout of a batch that can move there `sent` or `failed` (see
    payouts_mark_many): a batch marked sent leaves its failed payouts failed, also one failed by
    someone else a moment ago (which payouts can move is read under their locks)."""
    locked = Payout.objects.select_for_update().filter(batch=batch).order_by("pk")
    movable = [p for p in locked if p.status == status or status in STATUS_MOVES[p.status]]
    return payouts_mark_many(payouts=movable, status=status, actor=actor, at=at)


@transaction.atomic
def payout_details_set(
    *, program: ReferralProgram, partner: Client, details: str, actor: Actor
) -> Partnership:
    """Where `partner`'s payouts of `program` go (an IBAN, a payment e-mail...); enrols the
    partner when they are not yet. History shows the details masked, as lists do."""
    partnership = partner_enrol(program=program, partner=partner, actor=actor)
    partnership = Partnership.objects.select_for_update().get(pk=partnership.pk)
    details = " ".join(details.split())
    if partnership.payout_details == details:
        return partnership
    partnership.payout_details = details
    partnership.full_clean(validate_unique=False)
    partnership.save(update_fields=["payout_details"])
    history_record(
        obj=program,
        actor=actor,
        desc=f"Payout details of {partner} set to {selectors.masked(details) or '(none)'}",
    )
    return partnership
