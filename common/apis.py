"""What every REST view shares: who acts, and permissions that also guard reads."""

from rest_framework.permissions import BasePermission, DjangoModelPermissions

from common.actors import Actor


def api_actor(request, action: str) -> Actor:
    return Actor(user=request.user, ip=request.META.get("REMOTE_ADDR"), action=action)


class ModelPermissionsWithView(DjangoModelPermissions):
    """Django model permissions, with `view_*` required for reads too."""

    perms_map = {**DjangoModelPermissions.perms_map, "GET": ["%(app_label)s.view_%(model_name)s"]}


class HasPerm(BasePermission):
    """The view names the one Django permission it needs as `required_perm`."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(view.required_perm))
