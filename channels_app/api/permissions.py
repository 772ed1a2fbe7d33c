from rest_framework.permissions import SAFE_METHODS, BasePermission


class StaffWritesOnly(BasePermission):
    """Any authenticated user reads; only staff write configuration (API.md: 403 otherwise)."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or request.user.is_staff


class CanViewAuditLog(BasePermission):
    """The audit log needs `channels_app.view_auditentry` (API.md, "Audit log")."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("channels_app.view_auditentry"))
