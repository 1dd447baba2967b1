"""Importing these modules fills the function table."""

from billmgr_api.handlers import (  # noqa: F401
    billing,
    clicks,
    engine,
    promotions,
    referrals,
    session,
)
