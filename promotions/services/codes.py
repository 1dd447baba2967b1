"""Writes to promo codes: one fixed code, codes generated from a template, changes and deletions."""

import itertools
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from common.actors import Actor
from common.services import history_record, model_create, model_delete_many, model_update
from promotions import codegen
from promotions.codegen import normalize_code
from promotions.models import PromoCode, Promotion
from promotions.services.catalogue import rules_changed

# Candidates drawn, checked and inserted per round of code generation.
GENERATION_BATCH = 20_000
# PostgreSQL's "deadlock detected": two generators met on the same codes; one batch retries.
DEADLOCK_SQLSTATE = "40P01"
# Below this many possible codes, a nearly full template is filled by enumerating what is left.
ENUMERATION_LIMIT = 200_000
# The most codes one call may generate; larger runs go through the management command.
MAX_CODES_PER_CALL = 1_000_000


# Promo codes ------------------------------------------------------------------------------------


@transaction.atomic
def promocode_create(
    *, promotion: Promotion, actor: Actor, code: str, **settings: Any
) -> PromoCode:
    """One fixed code (no `?`); a template makes many codes through `promocodes_generate`."""
    text = normalize_code(code or "")
    if not text:
        raise ValidationError({"code": "Enter a promo code."})
    if codegen.is_template(text):
        raise ValidationError(
            {"code": 'A "?" makes a template: generate codes from it instead of adding one.'}
        )
    code = model_create(
        model=PromoCode,
        data={"promotion": promotion, "code": text, **settings},
        actor=actor,
        root=promotion,
    )
    rules_changed(promotion.provider_id)
    return code


def promocodes_generate_check(
    *,
    promotion: Promotion,
    template: str,
    count: int,
    digits_only: bool = False,
    **settings: Any,
) -> None:
    """Refuse, before anything is written, a generation that cannot succeed: no template, a bad
    shared setting, or a count the template's free space cannot hold (ValidationError)."""
    _generation_plan(promotion, template, count, digits_only, settings)


def _generation_plan(
    promotion: Promotion, template: str, count: int, digits_only: bool, settings: dict[str, Any]
) -> tuple[PromoCode, int, int]:
    """The sample code every generated code copies, the template's space and its free part."""
    template = normalize_code(template or "")
    if not codegen.is_template(template):
        raise ValidationError({"code": 'A template has at least one "?".'})
    if count < 1:
        raise ValidationError({"count": "Generate at least one code."})
    if count > MAX_CODES_PER_CALL:
        raise ValidationError(
            {"count": ValidationError(f"At most {MAX_CODES_PER_CALL} codes at once.", code="limit")}
        )
    if len(template) > PromoCode._meta.get_field("code").max_length:
        raise ValidationError({"code": "The template is longer than a promo code may be."})
    # Validate the shared settings once on a sample code, so a bad value fails before any insert.
    sample = PromoCode(promotion=promotion, code=template, onlydigit=digits_only, **settings)
    sample.full_clean(exclude=["code"])
    space = codegen.template_space(template, digits_only=digits_only)
    free = _free_space(template, digits_only, space, count)
    if count > free:
        raise ValidationError(
            {
                "count": ValidationError(
                    f"The template {template} can make only {free} more codes; "
                    "make it longer or ask for fewer.",
                    code="limit",
                )
            }
        )
    if space > ENUMERATION_LIMIT and space - free + count > space // 2:
        raise ValidationError(
            {
                "count": ValidationError(
                    f"The template {template} makes {space} codes, {space - free} of them taken; "
                    f"codes are drawn at random, so a template is filled to half at most: ask "
                    f"for at most {max(space // 2 - (space - free), 0)} or make it longer.",
                    code="limit",
                )
            }
        )
    return sample, space, free


@transaction.atomic
def promocodes_generate(
    *,
    promotion: Promotion,
    template: str,
    count: int,
    actor: Actor,
    digits_only: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    **settings: Any,
) -> int:
    """Create `count` new unique codes from `template` (each `?` a random letter or digit).

    Memory depends on the batch size, not on `count`.
    """
    sample, space, free = _generation_plan(promotion, template, count, digits_only, settings)
    template = sample.code
    insert = _code_inserter(sample)
    if space <= ENUMERATION_LIMIT and count * 2 > free:
        created = _generate_by_enumeration(template, digits_only, count, insert, progress)
    else:
        created = _generate_by_drawing(template, digits_only, count, insert, progress)
    history_record(
        obj=promotion,
        actor=actor,
        desc=f'{created} promo codes have been generated from template "{template}"',
    )
    rules_changed(promotion.provider_id)
    return created


def _taken(template: str, digits_only: bool) -> QuerySet:
    """The codes the template could make that exist already. The template's literal start bounds
    the search (an index range on PostgreSQL), so the cost follows those codes, not the table."""
    prefix = template.split(codegen.PLACEHOLDER, 1)[0]
    return PromoCode.objects.filter(
        code__startswith=prefix,
        code__regex=codegen.template_regex(template, digits_only=digits_only),
    )


def _free_space(template: str, digits_only: bool, space: int, count: int) -> int:
    """How many more codes the template can make. When even a table holding nothing but codes of
    this template would leave it at most half full, nothing needs counting: ids only grow, so
    the highest id bounds the codes there are."""
    if count > space:
        return space
    highest = PromoCode.objects.aggregate(highest=Max("id"))["highest"] or 0
    if highest + count <= space // 2:
        return space - highest
    return space - _taken(template, digits_only).count()


def _code_inserter(sample: PromoCode) -> Callable[[list[str]], int]:
    """A function inserting codes that share `sample`'s settings; it returns how many were new.

    One statement per batch with the codes as a single array parameter, `ON CONFLICT DO NOTHING`
    and `RETURNING`, so the count is exact even when a concurrent generator holds some codes.
    """
    fields = [f for f in PromoCode._meta.concrete_fields if f.name not in ("id", "code")]
    sample.created_at = timezone.now()
    constants = [f.get_db_prep_save(f.pre_save(sample, add=True), connection) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    codes_source = (
        "unnest(%s::text[]) AS c(code)"
        if connection.vendor == "postgresql"
        else "(SELECT value AS code FROM json_each(%s)) AS c"
    )
    sql = (
        f"INSERT INTO {quote(PromoCode._meta.db_table)} ({quote('code')}, {columns}) "
        f"SELECT c.code, {placeholders} FROM {codes_source} "
        "WHERE true ON CONFLICT (code) DO NOTHING RETURNING 1"
    )

    def insert(codes: list[str]) -> int:
        # Sorted, so concurrent generators take the rows' index locks in the same order.
        codes = sorted(codes)
        param = codes if connection.vendor == "postgresql" else json.dumps(codes)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [*constants, param])
                return len(cursor.fetchall())
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == DEADLOCK_SQLSTATE:
                return 0  # this batch lost a deadlock to another generator; the caller draws again
            raise

    return insert


def _generate_by_drawing(template, digits_only, count, insert, progress) -> int:
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    length = template.count(codegen.PLACEHOLDER)
    created = 0
    fruitless_rounds = 0
    while created < count:
        want = min(GENERATION_BATCH, count - created)
        # No lookup of taken codes first: the insert's ON CONFLICT DO NOTHING skips them and
        # returns how many were new, so a collision only leaves a few codes for the next round.
        candidates = list(
            set(codegen.fill(template, codegen.random_fillings(alphabet, length, want)))
        )
        inserted = insert(candidates)
        created += inserted
        fruitless_rounds = 0 if inserted else fruitless_rounds + 1
        if fruitless_rounds >= 20:
            raise ValidationError(
                {
                    "count": ValidationError(
                        f"Could not find free codes for template {template}; make it longer.",
                        code="limit",
                    )
                }
            )
        progress(created)
    return created


def _generate_by_enumeration(template, digits_only, count, insert, progress) -> int:
    alphabet = codegen.alphabet_for(digits_only=digits_only)
    length = template.count(codegen.PLACEHOLDER)
    taken = set(_taken(template, digits_only).values_list("code", flat=True))
    every = codegen.fill(template, ("".join(p) for p in itertools.product(alphabet, repeat=length)))
    chosen = random.sample([c for c in every if c not in taken], count)
    created = 0
    for start in range(0, len(chosen), GENERATION_BATCH):
        created += insert(chosen[start : start + GENERATION_BATCH])
        progress(created)
    if created != count:
        raise ValidationError(
            {
                "count": ValidationError(
                    "Another generator took some of these codes at the same time; try again.",
                    code="limit",
                )
            }
        )
    return created


@transaction.atomic
def promocode_update(*, promocode: PromoCode, actor: Actor, **fields: Any) -> PromoCode:
    if fields.get("code") is not None:
        fields["code"] = normalize_code(fields["code"])
    promocode, _ = model_update(
        instance=promocode, data=fields, actor=actor, root=promocode.promotion
    )
    rules_changed(promocode.promotion.provider_id)
    return promocode


@transaction.atomic
def promocode_delete_many(*, promocodes: Iterable[PromoCode], actor: Actor) -> int:
    promocodes = list(promocodes)
    used = [c.code for c in promocodes if c.usages.exists()]
    if used:
        raise ValidationError({"elid": f"These codes have been used and are kept: {used}"})
    deleted = model_delete_many(objects=promocodes, actor=actor, root_of=lambda c: c.promotion)
    rules_changed(*(c.promotion.provider_id for c in promocodes))
    return deleted
