"""`/workspace/`: the agents' page (API.md, "The workspace"). The page is built on the public API only: this
view renders the template with what the page needs before its first request (the options it reads, who the
agent is); everything else the page asks of /api/ with the session's cookie and CSRF token."""

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from channels_app import rights, selectors
from channels_app.api.routing_serializers import AgentStateSerializer
from channels_app.option_values import all_option_values, option_definition_get, option_value
from channels_app.options_catalog import IW
from channels_app.services.routing import agent_state_get
from channels_app.workspace.options import SHELL_OPTIONS, WINDOW_OPTIONS

RIGHTS_KEY = "workspace.get"


def workspace_option_names() -> list[str]:
    return list(dict.fromkeys([*SHELL_OPTIONS, *WINDOW_OPTIONS]))


def _json_value(value):
    return list(value) if isinstance(value, tuple) else value  # an integer pair, as a JSON array


def workspace_options(user) -> dict:
    """`{"<name>": value}`: the global value of every option the page reads (section interaction-workspace),
    typed as the catalog parses it (booleans, integers, [a, b] pairs, JSON objects, text)."""
    return {name: _json_value(option_value(section=IW, name=name)) for name in workspace_option_names()}


def workspace_channel_options(user) -> dict:
    """`{"<channel id>": {"<name>": value}}`: the values a channel of the user's tenants sets for itself
    (only those that differ from the global value's row: a channel without its own values is left out)."""
    names = set(workspace_option_names())
    own: dict[int, dict] = {}
    for (section, name, channel_id), stored in all_option_values().items():
        if section == IW and name in names and channel_id is not None:
            own.setdefault(channel_id, {})[name] = _json_value(
                option_definition_get(section=IW, name=name).parse(stored))
    if not own:
        return {}
    channels = selectors.channel_list(user=user).filter(pk__in=own).values_list("pk", "channel_id")
    return {channel_id: own[pk] for pk, channel_id in channels}


def workspace_me(user) -> dict:
    """`GET /api/agents/me/` with who the agent is and the permissions the page looks at."""
    return {
        **AgentStateSerializer(agent_state_get(user=user)).data,
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
    return render(request, "workspace/index.html", {
        "options": workspace_options(request.user),
        "channel_options": workspace_channel_options(request.user),
        "me": workspace_me(request.user),
    })
