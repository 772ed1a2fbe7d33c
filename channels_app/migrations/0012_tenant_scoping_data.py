"""Everything that belongs to a tenant gets one.

* A contact moves under the tenant of its interactions' channels. A contact
  with interactions in several tenants is copied once per further tenant, and
  those tenants' interactions point at their copy (contacts are per tenant).
* A contact without interactions, and the standard response library
  (categories, responses, attachments), go to the lowest tenant; a response
  every campaign of which runs in one tenant goes to that tenant.
* Rows exist but no tenant does: tenant 1 is created for them.
"""

from django.db import migrations


def assign_tenants(apps, schema_editor):
    Tenant = apps.get_model("channels_app", "Tenant")
    Contact = apps.get_model("channels_app", "Contact")
    Interaction = apps.get_model("channels_app", "Interaction")
    StandardResponse = apps.get_model("channels_app", "StandardResponse")
    StandardResponseCategory = apps.get_model("channels_app", "StandardResponseCategory")
    Attachment = apps.get_model("channels_app", "Attachment")
    Campaign = apps.get_model("channels_app", "Campaign")

    models_to_fill = (Contact, StandardResponse, StandardResponseCategory, Attachment)
    if not any(model.objects.filter(tenant__isnull=True).exists() for model in models_to_fill):
        return
    first = Tenant.objects.order_by("id").first() or Tenant.objects.create(id=1, name="Default")

    for contact in Contact.objects.filter(tenant__isnull=True).iterator():
        tenant_ids = sorted(
            set(Interaction.objects.filter(contact=contact).values_list("channel__tenant_id", flat=True))
        )
        contact.tenant_id = tenant_ids[0] if tenant_ids else first.id
        contact.save(update_fields=["tenant"])
        for tenant_id in tenant_ids[1:]:
            original_id = contact.pk
            copy = Contact.objects.get(pk=original_id)
            copy.pk = None
            copy.tenant_id = tenant_id
            copy.save()
            Interaction.objects.filter(contact_id=original_id, channel__tenant_id=tenant_id).update(contact=copy)

    for response in StandardResponse.objects.filter(tenant__isnull=True):
        campaign_tenants = set(Campaign.objects.filter(standard_response=response).values_list(
            "channel__tenant_id", flat=True))
        response.tenant_id = campaign_tenants.pop() if len(campaign_tenants) == 1 else first.id
        response.save(update_fields=["tenant"])
    StandardResponseCategory.objects.filter(tenant__isnull=True).update(tenant=first)
    Attachment.objects.filter(tenant__isnull=True).update(tenant=first)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0011_tenant_scoping")]

    operations = [migrations.RunPython(assign_tenants, migrations.RunPython.noop)]
