"""Promo codes read from a CSV file: all rows or none, every bad row named by its line."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from common.actors import Actor
from common.services import history_record
from promotions import codegen
from promotions.codegen import normalize_code
from promotions.models import PromoCode, Promotion
from promotions.services.catalogue import rules_changed

# Codes in and out as CSV ----------------------------------------------------------------------

CSV_COLUMNS = ["code", *PromoCode.SETTINGS]
MAX_IMPORT_ROWS = 100_000


def _csv_row_code(promotion: Promotion, row: dict[str, str]) -> PromoCode:
    values = {k: (row.get(k) or "").strip() for k in CSV_COLUMNS}
    code = PromoCode(
        promotion=promotion,
        code=normalize_code(values["code"]),
        active_time_type=values["active_time_type"] or PromoCode.ActiveTimeType.ALWAYS,
        expiretype=values["expiretype"] or PromoCode.ExpireType.UNLIMITED,
        periodtype=values["periodtype"],
    )
    for name in ("uselimit", "account_uselimit", "fromdate", "todate", "periodlength"):
        field = PromoCode._meta.get_field(name)
        try:
            setattr(code, name, field.to_python(values[name]) if values[name] else None)
        except ValidationError as exc:
            raise ValidationError({name: exc.messages}) from None
    return code


@transaction.atomic
def promocodes_import(*, promotion: Promotion, rows: Iterable[dict[str, str]], actor: Actor) -> int:
    """Add codes read from CSV rows, all or none: every bad row is reported by its line number."""
    codes: list[PromoCode] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        if line - 1 > MAX_IMPORT_ROWS:
            raise ValidationError(f"At most {MAX_IMPORT_ROWS} codes per file.", code="limit")
        try:
            code = _csv_row_code(promotion, row)
            code.code = normalize_code(code.code)
            if codegen.is_template(code.code):
                raise ValidationError({"code": 'A "?" template cannot be imported.'})
            # Uniqueness is checked for the whole file at once below, and the database holds the
            # constraints: per row, only the fields and the model's own rules.
            code.full_clean(
                exclude=["promotion"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as exc:
            details = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            errors += [
                f"line {line}: {k + ': ' if k else ''}{'; '.join(v)}" for k, v in details.items()
            ]
            continue
        if code.code in seen:
            errors.append(f"line {line}: code: {code.code} repeats line {seen[code.code]}")
            continue
        seen[code.code] = line
        codes.append(code)
    wanted = list(seen)
    taken = {
        code
        for i in range(0, len(wanted), 5000)
        for code in PromoCode.objects.filter(code__in=wanted[i : i + 5000]).values_list(
            "code", flat=True
        )
    }
    errors += [f"line {seen[c]}: code: {c} exists already" for c in sorted(taken, key=seen.get)]
    if not errors and not codes:
        errors.append("The file holds no codes.")
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            PromoCode.objects.bulk_create(codes, batch_size=5000)
    except IntegrityError:
        raise ValidationError(
            "Some of the codes were taken meanwhile; nothing was imported."
        ) from None
    history_record(obj=promotion, actor=actor, desc=f"{len(codes)} promo codes have been imported")
    rules_changed(promotion.provider_id)
    return len(codes)
