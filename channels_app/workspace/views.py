"""`/workspace/`: the agents' page (API.md, "The workspace"). The page is built on the public API only: this
view renders the template with what the page needs before its first request (the options it reads, who the
agent is); everything else the page asks of /api/ with the session's cookie and CSRF token."""

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from channels_app import rights
from channels_app.choices import MediaType
from channels_app.services.routing import agent_state_get
from channels_app.services.workspace import workspace_channel_option_values, workspace_option_values
from channels_app.workspace.options import SHELL_OPTIONS, WINDOW_OPTIONS

RIGHTS_KEY = "workspace.get"
SHORT_MEDIA_NAMES = {MediaType.ABC: "Apple Messages"}  # the top bar's toggles


def workspace_option_names() -> list[str]:
    return list(dict.fromkeys([*SHELL_OPTIONS, *WINDOW_OPTIONS]))


def workspace_me(user) -> dict:
    """`GET /api/agents/me/` with who the agent is and the permissions the page looks at."""
    state = agent_state_get(user=user)
    return {
        "ready": state.ready, "capacity": state.capacity, "assigned": state.assigned,
        "id": user.pk,
        "username": user.get_username(),
        "display_name": user.get_full_name() or user.get_username(),
        "permissions": sorted(user.get_all_permissions()),
    }


@never_cache
def workspace(request):
    """The page: the admin's login first (back here after it); a user without Workspace - Can use gets a page
    that says so (403)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    rule = rights.rule(RIGHTS_KEY)
    if not rule.allows(request.user):
        return render(request, "workspace/forbidden.html", {"missing": rule.missing(request.user)}, status=403)
    me = workspace_me(request.user)
    return render(request, "workspace/index.html", {
        "options": workspace_option_values(names=workspace_option_names()),
        "channel_options": workspace_channel_option_values(user=request.user, names=workspace_option_names()),
        "me": me,
        "media": [(value, SHORT_MEDIA_NAMES.get(value, label), me["ready"].get(value, False))
                  for value, label in MediaType.choices],
    })
