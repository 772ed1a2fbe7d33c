# A customer message's open interaction read through a partial index of the open ones (issue 25, lever 4).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0034_indexes_only_where_used'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='interaction',
            index=models.Index(condition=models.Q(('state', 'ended'), _negated=True), fields=['contact', 'channel', '-created_at'], name='interaction_open_by_contact'),
        ),
    ]
