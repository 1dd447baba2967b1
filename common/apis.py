"""What every REST view shares: who acts, and permissions that also guard reads."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.exceptions import ParseError, Throttled, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.views import exception_handler as drf_exception_handler

from common.actors import Actor
from common.bodies import BadJson, json_loads
from common.net import client_ip
from common.throttle import Throttled as BrakeThrottled


def api_actor(request, action: str) -> Actor:
    return Actor(user=request.user, ip=client_ip(request), action=action)


class ModelPermissionsWithView(DjangoModelPermissions):
    """Django model permissions, with `view_*` required for reads too."""

    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}


class HasPerm(BasePermission):
    """The view names the one Django permission it needs as `required_perm`."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(view.required_perm))


class Conflict(serializers.Serializer):
    """The 409 answer: why a write was refused."""

    detail = serializers.CharField()


def service_call(fn):
    """Run a service; a Django ValidationError becomes a 400 with the same field messages, and a
    brake on guessing a 429 with Retry-After."""
    try:
        return fn()
    except BrakeThrottled as exc:
        raise _too_many(exc) from None
    except DjangoValidationError as exc:
        raise ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        ) from None


def _too_many(exc: BrakeThrottled) -> Throttled:
    return Throttled(wait=exc.retry_after, detail="Too many failed attempts; slow down.")


def exception_handler(exc, context):
    """DRF's, and a brake's refusal (a sign-in through Basic or the token endpoint, a guessed
    code) is a 429 with Retry-After wherever it is raised."""
    if isinstance(exc, BrakeThrottled):
        exc = _too_many(exc)
    return drf_exception_handler(exc, context)


class SafeJSONParser(JSONParser):
    """JSON bodies as every door reads them (common/bodies.py): a lone surrogate or nesting deeper
    than any of our bodies is a 400, not a crash further on."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(stream.read().decode(encoding))
        except BadJson as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
