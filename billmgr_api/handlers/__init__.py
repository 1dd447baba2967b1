"""Importing these modules fills the function table."""

from billmgr_api.handlers import billing, promotions, session  # noqa: F401
