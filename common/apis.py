"""What every REST view shares: who acts, and permissions that also guard reads."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission, DjangoModelPermissions, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from common.actors import Actor
from common.moments import checked_moment
from common.net import client_ip
from common.parsers import SafeJSONParser
from common.selectors import job_as_dict, job_for
from common.throttle import Throttled as BrakeThrottled


def api_actor(request, action: str) -> Actor:
    return Actor(user=request.user, ip=client_ip(request), action=action)


class Pagination(LimitOffsetPagination):
    """Every REST list: `limit` (100 unless asked, 1,000 at most) and `offset`."""

    default_limit = 100
    max_limit = 1000


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


def nested_errors(messages: dict[str, list[str]], field_names: dict[str, str]) -> dict:
    """Field errors as DRF nests them: a dotted path (`lines.2.price`) becomes
    {"lines": {"2": {"price": [...]}}}; `field_names` renames a top-level field for this door."""
    nested: dict = {}
    for path, errors in messages.items():
        head, *rest = path.split(".")
        parts = [field_names.get(head, head), *rest]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = errors
    return nested


def service_call(fn, *, field_names: dict[str, str] | None = None):
    """Run a service; a Django ValidationError becomes a 400 with the same field messages, and a
    brake on guessing a 429 with Retry-After."""
    try:
        return fn()
    except BrakeThrottled as exc:
        raise _too_many(exc) from None
    except DjangoValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise ValidationError(exc.messages) from None
        raise ValidationError(nested_errors(exc.message_dict, field_names or {})) from None


# One instance per input serializer class, its fields built once: see `validated`.
_PREBUILT: dict[type[serializers.Serializer], serializers.Serializer] = {}


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """What `serializer_class(data=data).is_valid(raise_exception=True)` validates, or the same
    ValidationError.

    Measured need: DRF builds a serializer's fields afresh for each instance (a deep copy of the
    declared ones); for an order that was 0.3 ms of a redemption's 2.7 ms of CPU in the app
    server, against 0.03 ms for validating it (bench/http_load.py profiles). Valid data goes
    through one instance per class, built once: `run_validation` keeps nothing on it, so requests
    in parallel share it. Invalid data is worded by a fresh instance, exactly as is_valid
    words it (the shared one is never bound to data)."""
    serializer = _PREBUILT.get(serializer_class)
    if serializer is None:
        serializer = serializer_class()
        serializer.fields  # noqa: B018 -- built here, once, rather than by requests in parallel
        _PREBUILT[serializer_class] = serializer
    try:
        return serializer.run_validation(data)
    except ValidationError:
        fresh = serializer_class(data=data)
        fresh.is_valid(raise_exception=True)
        return fresh.validated_data


def _too_many(exc: BrakeThrottled) -> Throttled:
    return Throttled(wait=exc.retry_after, detail="Too many failed attempts; slow down.")


def exception_handler(exc, context):
    """DRF's, and a brake's refusal (a sign-in through Basic or the token endpoint, a guessed
    code) is a 429 with Retry-After wherever it is raised."""
    if isinstance(exc, BrakeThrottled):
        exc = _too_many(exc)
    return drf_exception_handler(exc, context)


class MomentField(serializers.DateTimeField):
    """A moment a caller names (`at`), inside the range the engine can shift dates in."""

    def to_internal_value(self, value):
        moment = super().to_internal_value(value)
        try:
            return checked_moment(moment)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class TokenObtainApi(ObtainAuthToken):
    """`POST /api/v1/auth/token`: DRF's, reading JSON as every door does; the password is checked
    under the one sign-in policy (the authentication backend), a braked caller gets a 429."""

    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]


class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "running", "done", "failed"])
    done = serializers.IntegerField(help_text="Units of work done so far (a backtest: orders).")
    total = serializers.IntegerField()
    percent = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    result = serializers.JSONField(
        allow_null=True, help_text="What the job found, once `done` (a backtest's figures)."
    )


class JobApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: JobOutput},
        operation_id="job_retrieve",
        description="A background job's state and progress, and its result once `done`. Jobs "
        "are readable by the user who started them and by users with the right to view jobs.",
    )
    def get(self, request, job_id: int):
        job = job_for(user=request.user, job_id=job_id)
        if job is None:
            raise NotFound("No such job.")
        return Response(JobOutput(job_as_dict(job)).data)
