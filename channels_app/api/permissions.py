"""The API's one permission class: the table of rights (`channels_app.rights`)."""

from rest_framework.permissions import BasePermission

from channels_app.rights import rule_for_view


class TableRights(BasePermission):
    """Allows a request when the rights table's rule for the view and action
    allows the caller; a view or action without a rule is closed to everyone
    (and fails tests/test_authorization.py)."""

    def has_permission(self, request, view):
        if not hasattr(view, request.method.lower()):
            return True  # no such door: the view answers 405
        rule = rule_for_view(view, request.method)
        return rule is not None and rule.allows(request.user)
