"""The specification's own example as demo data, so its curl runs verbatim against `make run`."""

from billing.models import Currency
from common.actors import Actor
from digipay_api import services
from digipay_api.models import Company

DEMO_COMPANY_ID = "7753ad6bd8cf48f5b1312fd21eb36588"
DEMO_CURRENCY_ID = "7753ad6bd8cf48f5b1312fd21eb36588"
DEMO_TOKEN = "duik7309njdlkhdauhknksadhjkas986876sd873j"
DEMO_COMPANY_NAME = "DigiPay Demo"


def demo_company_ensure() -> tuple[Company, bool]:
    """The demo company with its token and currency; (company, False) when it exists already."""
    existing = Company.objects.filter(public_id=DEMO_COMPANY_ID).first()
    if existing is not None:
        return existing, False
    actor = Actor.system("load_demo")
    usd, _ = Currency.objects.get_or_create(iso="USD", defaults={"name": "US dollar"})
    company = services.company_create(
        name=DEMO_COMPANY_NAME,
        currency=usd,
        actor=actor,
        public_id=DEMO_COMPANY_ID,
        currency_public_id=DEMO_CURRENCY_ID,
    )
    services.token_create(company=company, actor=actor, key=DEMO_TOKEN)
    return company, True
