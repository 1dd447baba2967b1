"""Importing these modules fills the function table."""

from billmgr_api.handlers import billing, engine, promotions, referrals, session  # noqa: F401
