"""The default groups of the contract (API.md, "Who may do what"), with the
spec's WhatsApp role permissions."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from channels_app.choices import WHATSAPP_ROLE_PERMISSIONS

ALL_WHATSAPP_PERMISSIONS = [f"channels_app.{codename}" for codename, _ in WHATSAPP_ROLE_PERMISSIONS]


def _model_permissions(model: str, *actions: str, app: str = "channels_app") -> list[str]:
    return [f"{app}.{action}_{model}" for action in actions or ("view", "add", "change", "delete")]


CONFIGURATION_MODELS = (
    "tenant", "membership", "channel", "endpoint", "optionvalue", "businessattribute", "businessattributevalue",
    "standardresponse", "standardresponsecategory", "attachment", "campaign", "queue", "segment",
)
READ_LIBRARY = [
    *_model_permissions("channel", "view"),
    *_model_permissions("tenant", "view"),
    *_model_permissions("standardresponse", "view"),
    *_model_permissions("standardresponsecategory", "view"),
    *_model_permissions("attachment", "view"),
]
AGENT = [
    *READ_LIBRARY,
    # change: end an interaction with a disposition (Done); add: start a new outbound session.
    *_model_permissions("interaction", "view", "add", "change"),
    *_model_permissions("message", "view", "add"),
    # change: the workspace's contact panel edits the contact's details (API.md "The workspace").
    *_model_permissions("contact", "view", "change"),
    *_model_permissions("attachment", "add"),
    *_model_permissions("businessattribute", "view"),
    *_model_permissions("businessattributevalue", "view"),
    *_model_permissions("queue", "view"),  # the queues a transfer may go to
    "channels_app.whatsapp_can_use",
    "channels_app.whatsapp_can_send_files",
    "channels_app.use_workspace",  # offered interactions of queues routed by the server (services.routing)
]

# Group name -> the permissions (`app.codename`) it holds by default.
DEFAULT_GROUPS: dict[str, list[str]] = {
    # Everything about the configuration and the history of its tenants; not an agent, not an ESP client.
    "Administrator": [
        *[permission for model in CONFIGURATION_MODELS for permission in _model_permissions(model)],
        *_model_permissions("campaignrecipient", "view"),
        *_model_permissions("contact", "view", "change"),
        "channels_app.erase_contact",  # the right to erasure (API.md, "Data lifecycle")
        *_model_permissions("contactoptout"),
        *_model_permissions("whatsapptemplate", "view"),
        *_model_permissions("interaction", "view"),
        *_model_permissions("message", "view"),
        *_model_permissions("delivery", "view", "change"),
        *_model_permissions("deliveryattempt", "view"),
        *_model_permissions("messageattachment", "view", "change"),  # "fetch again"
        *_model_permissions("auditentry", "view"),
        *_model_permissions("user", app="auth"),
        *_model_permissions("group", "view", app="auth"),
        "channels_app.view_reports",  # the Reports page and /api/reports/ (API.md, "Reports")
    ],
    "Campaign manager": [
        *READ_LIBRARY,
        *_model_permissions("campaign"),
        *_model_permissions("campaignrecipient", "view"),
        "channels_app.view_reports",  # their campaigns' reports
        *_model_permissions("segment"),  # audiences built from the contacts (services/segments.py)
    ],
    "WhatsApp agent": AGENT,
    # The supervisors of the default groups: they read how fast their agents answer.
    "WhatsApp senior agent": [*AGENT, *ALL_WHATSAPP_PERMISSIONS, "channels_app.view_reports"],
    "ESP client": ["channels_app.use_esp"],
}


def roles_ensure_default_groups() -> None:
    """Create the default groups and give each at least its default
    permissions (permissions an administrator added are kept)."""
    wanted = {permission for permissions in DEFAULT_GROUPS.values() for permission in permissions}
    query = Q()
    for permission in wanted:
        app, codename = permission.split(".", 1)
        query |= Q(content_type__app_label=app, codename=codename)
    found = {
        f"{permission.content_type.app_label}.{permission.codename}": permission
        for permission in Permission.objects.filter(query).select_related("content_type")
    }
    if len(found) != len(wanted):
        return  # permissions are created by the auth app's post_migrate, for every app; ours may run first
    for name, permissions in DEFAULT_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*[found[permission] for permission in permissions])
