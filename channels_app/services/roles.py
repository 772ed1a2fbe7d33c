"""The WhatsApp role permissions of the specification as Django groups."""

from django.contrib.auth.models import Group, Permission

from channels_app.choices import WHATSAPP_ROLE_PERMISSIONS

ALL_WHATSAPP_PERMISSIONS = [codename for codename, _ in WHATSAPP_ROLE_PERMISSIONS]

# Groups an administrator assigns to agents (Users > Groups in the admin).
DEFAULT_GROUPS = {
    "WhatsApp agent": ["whatsapp_can_use", "whatsapp_can_send_files"],
    "WhatsApp senior agent": ALL_WHATSAPP_PERMISSIONS,
}


def roles_ensure_default_groups() -> None:
    """Create the default groups when missing (existing groups are left as the administrator set them)."""
    permissions = {
        permission.codename: permission
        for permission in Permission.objects.filter(
            content_type__app_label="channels_app", codename__in=ALL_WHATSAPP_PERMISSIONS
        )
    }
    if len(permissions) != len(ALL_WHATSAPP_PERMISSIONS):
        return  # permissions are created by the auth app's post_migrate; it runs before ours on a fresh migrate
    for name, codenames in DEFAULT_GROUPS.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            group.permissions.set([permissions[codename] for codename in codenames])
