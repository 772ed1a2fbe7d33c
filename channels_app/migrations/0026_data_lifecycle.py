"""Data lifecycle (issue 26): each tenant's retention and last purge, the
erase_contact permission (given to the Administrator group of an existing
installation; a new one gets it from roles_ensure_default_groups), and the
audit actions purge and erase."""

from django.db import migrations, models


def grant_erase_contact(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    administrators = Group.objects.filter(name="Administrator").first()
    if administrators is None:
        return  # a new installation: the default groups are made after migrating, with it
    content_type, _ = ContentType.objects.get_or_create(app_label="channels_app", model="contact")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="erase_contact",
        defaults={"name": "Can erase a contact and their personal data (the right to erasure)"},
    )
    administrators.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0025_routing'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='contact',
            options={'ordering': ['-updated_at'], 'permissions': (('erase_contact', 'Can erase a contact and their personal data (the right to erasure)'),)},
        ),
        migrations.AddField(
            model_name='tenant',
            name='last_purge',
            field=models.JSONField(blank=True, editable=False, help_text='The last purge of this tenant: {"at": ..., "removed": {"interactions": n, ...}}.', null=True),
        ),
        migrations.AddField(
            model_name='tenant',
            name='retention_days',
            field=models.JSONField(blank=True, default=dict, help_text='Days each class of data is kept (conversations, deliveries, campaigns, audit); a class left out or null is kept for ever.'),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='action',
            field=models.CharField(choices=[('create', 'Create'), ('update', 'Update'), ('delete', 'Delete'), ('state_change', 'state change'), ('revoke', 'Revoke'), ('purge', 'Purge'), ('erase', 'Erase')], max_length=16),
        ),
        migrations.AddIndex(
            model_name='interaction',
            index=models.Index(condition=models.Q(('state', 'ended')), fields=['ended_at'], name='interaction_ended'),
        ),
        migrations.RunPython(grant_erase_contact, migrations.RunPython.noop),
    ]
