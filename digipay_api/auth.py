"""Who calls the DigiPay door: `Authorization: Token KEY` names a company's token, and `CompanyID`
must be that company. A missing, wrong or revoked token (or no CompanyID) is a 401; a good token
with another company's id is a 403."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import (
    AuthenticationFailed,
    NotAuthenticated,
    PermissionDenied,
    Throttled,
)
from rest_framework.permissions import BasePermission

from common.actors import Actor
from common.net import client_ip
from common.signin import address_brake_give_back, address_brake_take
from common.throttle import Throttled as BrakeThrottled
from digipay_api import selectors
from digipay_api.models import Company

KEYWORD = "Token"
COMPANY_HEADER = "CompanyID"


class CompanyPrincipal:
    """`request.user` on this door: the company whose token was sent."""

    is_authenticated = True
    is_anonymous = False
    pk = None

    def __init__(self, company: Company):
        self.company = company

    def __str__(self) -> str:
        return f"DigiPay company {self.company.public_id}"


class CompanyTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            parts = get_authorization_header(request).split()
        except UnicodeError:
            raise AuthenticationFailed("The token is wrong or revoked.") from None
        if not parts:
            return None
        if parts[0].lower() != KEYWORD.lower().encode() or len(parts) != 2:
            raise AuthenticationFailed(f"Send the header Authorization: {KEYWORD} KEY.")
        try:
            key = parts[1].decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("The token is wrong or revoked.") from None
        # Guessing keys spends the address's sign-in budget, like a wrong password on any door.
        address = client_ip(request)
        try:
            address_brake_take(address)
        except BrakeThrottled as exc:
            raise Throttled(
                wait=exc.retry_after, detail="Too many wrong tokens; slow down."
            ) from None
        token = selectors.token_find(key=key)
        if token is None:
            raise AuthenticationFailed("The token is wrong or revoked.")
        address_brake_give_back(address)
        return CompanyPrincipal(token.company), token

    def authenticate_header(self, request) -> str:
        return KEYWORD


class IsTheTokensCompany(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, CompanyPrincipal):
            raise NotAuthenticated(
                f"Send the headers Authorization: {KEYWORD} KEY and {COMPANY_HEADER}: ID."
            )
        company_id = request.headers.get(COMPANY_HEADER, "").strip().lower()
        if not company_id:
            raise NotAuthenticated(f"Send the header {COMPANY_HEADER}: ID.")
        if company_id != request.user.company.public_id:
            raise PermissionDenied(f"The token does not belong to the company {company_id}.")
        return True


def company_of(request) -> Company:
    return request.user.company


def actor_of(request, action: str) -> Actor:
    """History names the door, the operation and the company (the `action` column)."""
    company = company_of(request)
    return Actor(
        user=None,
        ip=client_ip(request),
        action=f"digipay:{action} company {company.public_id}",
    )


class CompanyTokenScheme(OpenApiAuthenticationExtension):
    """Both headers in the schema's security: they are required together."""

    target_class = CompanyTokenAuthentication
    name = ["DigiPayToken", "DigiPayCompanyID"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f"`{KEYWORD} KEY`: a company's API token "
                "(`python manage.py digipay_token create --company NAME`).",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": COMPANY_HEADER,
                "description": "The 32-hex id of the token's company.",
            },
        ]


HEADER_PARAMETERS = [
    OpenApiParameter(
        "Authorization",
        str,
        OpenApiParameter.HEADER,
        required=True,
        description=f"`{KEYWORD} KEY`, a company's API token.",
    ),
    OpenApiParameter(
        COMPANY_HEADER,
        str,
        OpenApiParameter.HEADER,
        required=True,
        description="The 32-hex id of the token's company.",
    ),
]
