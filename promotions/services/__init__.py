"""Writes for promotions, by concern; every door (admin, func-style API, REST, commands) calls these.

- catalogue: promotions, discounts, conditions
- codes: a fixed promo code, codes generated from a template, changes and deletions
- redemption: quotes behind the guessing brake, redemptions and releases
- imports: promo codes from CSV
- orders: the order contract every door shares (limits, code spelling, idempotency keys)
"""

from promotions.services.catalogue import (
    condition_create,
    condition_delete_many,
    condition_group_create,
    condition_group_delete_many,
    condition_group_update,
    condition_update,
    discount_create,
    discount_delete_many,
    discount_update,
    promotion_archive,
    promotion_create,
    promotion_delete_many,
    promotion_restore,
    promotion_update,
)
from promotions.services.codes import (
    MAX_CODES_PER_CALL,
    promocode_create,
    promocode_delete_many,
    promocode_update,
    promocodes_generate,
    promocodes_generate_check,
)
from promotions.services.imports import CSV_COLUMNS, MAX_IMPORT_ROWS, promocodes_import
from promotions.services.orders import (
    MAX_CODES_PER_ORDER,
    MAX_LINES_PER_ORDER,
    idempotency_key_clean,
    order_build,
)
from promotions.services.redemption import (
    RedemptionRefused,
    order_fingerprint,
    order_quote,
    redemption_redeem,
    redemption_release,
)

__all__ = [
    "CSV_COLUMNS",
    "MAX_CODES_PER_CALL",
    "MAX_CODES_PER_ORDER",
    "MAX_IMPORT_ROWS",
    "MAX_LINES_PER_ORDER",
    "RedemptionRefused",
    "condition_create",
    "condition_delete_many",
    "condition_group_create",
    "condition_group_delete_many",
    "condition_group_update",
    "condition_update",
    "discount_create",
    "discount_delete_many",
    "discount_update",
    "idempotency_key_clean",
    "order_build",
    "order_fingerprint",
    "order_quote",
    "promocode_create",
    "promocode_delete_many",
    "promocode_update",
    "promocodes_generate",
    "promocodes_generate_check",
    "promocodes_import",
    "promotion_archive",
    "promotion_create",
    "promotion_delete_many",
    "promotion_restore",
    "promotion_update",
    "redemption_redeem",
    "redemption_release",
]
