"""The audit log (API.md, "Audit log"): every change of configuration writes an entry, secrets masked;
`GET /api/audit-log/` and the admin's page, scoped by tenant."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.audit import MASK
from channels_app.choices import MediaType, Transport
from channels_app.models import AuditEntry, BusinessAttribute, Campaign, Channel, Membership, StandardResponse, Tenant
from channels_app.services.business_attributes import business_attribute_save
from channels_app.services.campaigns import (
    campaign_create,
    campaign_run_batch,
    campaign_transition,
    campaigns_tick,
)
from channels_app.services.options import option_set
from channels_app.services.standard_responses import standard_response_save

SECRET = "s3cr3t-never-in-the-audit-log"


@pytest.fixture(autouse=True)
def _no_earlier_entries(db):
    AuditEntry.objects.all().delete()  # those of the bootstrap at migrate (by "system")


def _entries(**lookup) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**lookup).order_by("id"))


def _token_api(user, **extra) -> APIClient:
    api = APIClient(**extra)
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return api


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-pass-123")


def _channel_body(**fields) -> dict:
    return {"channel_id": "channel-audit", "name": "Audit", "tenant": 1, "media_type": "whatsapp",
            "transport": "webhook", "business_id": "19251112222", "webhook_url": "http://127.0.0.1:9/hook",
            "secret": SECRET, "endpoints": ["1:session-chat"], "inbound_route_by_call": "1:session-chat", **fields}


def _response(tenant, response_id="AUDITRESPONSE001") -> StandardResponse:
    return standard_response_save(response=StandardResponse(
        id=response_id, tenant=tenant, name="Greeting", content_type="text", body="Hello"))


# --- what is recorded ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_channel_over_the_api_records_who_from_where_with_the_secret_masked(tenant, admin_user):
    # given an administrator's token, behind no proxy (NUM_PROXIES=0: the connection's address counts)
    api = _token_api(admin_user, REMOTE_ADDR="203.0.113.5")

    # when
    response = api.post("/api/channels/", _channel_body(), format="json", HTTP_X_FORWARDED_FOR="192.0.2.1")

    # then
    assert response.status_code == 201, response.content
    entry = _entries(object_type="channel")[0]
    assert (entry.action, entry.object_id, entry.tenant_id) == ("create", "channel-audit", tenant.id)
    assert (entry.user, entry.username, entry.remote_addr) == (admin_user, "root", "203.0.113.5")
    assert entry.changes["secret"] == [None, MASK]
    assert entry.changes["webhook_url"] == [None, "http://127.0.0.1:9/hook"]
    assert entry.changes["tenant"] == [None, tenant.id]
    for stored in AuditEntry.objects.all():  # the endpoints' and the route's entries too
        assert SECRET not in json.dumps(stored.changes) + stored.object_repr + stored.object_id
    assert {e.object_type for e in _entries(at__gte=entry.at)} == {"channel", "option"}
    endpoints = _entries(object_type="channel", action="update")[0]
    assert endpoints.changes == {"endpoints": [[], ["1:session-chat"]]}


@pytest.mark.django_db
def test_a_rotation_with_a_grace_records_until_when_with_both_secrets_masked(tenant, admin_user):
    api = _token_api(admin_user)
    assert api.post("/api/channels/", _channel_body(), format="json").status_code == 201
    AuditEntry.objects.all().delete()

    rotated = api.post("/api/channels/channel-audit/rotate-secret/", {"grace_hours": 2}, format="json").json()

    [entry] = _entries(object_type="channel")
    # the secrets are masked, the old one as the new one; until when the old one is accepted is shown
    assert entry.changes["secret"] == [MASK, MASK]
    assert entry.changes["previous_secret"] == ["", MASK]
    before, until = entry.changes["previous_secret_until"]
    assert before is None and abs(timezone.datetime.fromisoformat(until)
                                  - timezone.datetime.fromisoformat(rotated["previous_secret_valid_until"])) \
        < timedelta(seconds=1)
    stored = json.dumps([e.changes for e in AuditEntry.objects.all()])
    assert SECRET not in stored and rotated["secret"] not in stored


@pytest.mark.django_db
def test_a_channel_update_records_before_and_after_and_a_new_secret_masked(tenant, admin_user):
    api = _token_api(admin_user)
    assert api.post("/api/channels/", _channel_body(), format="json").status_code == 201
    AuditEntry.objects.all().delete()

    response = api.patch("/api/channels/channel-audit/", {"name": "Renamed", "secret": SECRET + "-2"}, format="json")

    assert response.status_code == 200, response.content
    [entry] = _entries(object_type="channel")
    assert entry.action == "update"
    assert entry.changes == {"name": ["Audit", "Renamed"], "secret": [MASK, MASK]}  # updated_at is not a change


@pytest.mark.django_db
def test_a_save_that_changes_nothing_records_nothing(channel):
    AuditEntry.objects.all().delete()

    channel.save()

    assert _entries() == []


@pytest.mark.django_db
def test_options_record_global_values_and_channel_overrides(channel):
    AuditEntry.objects.all().delete()

    option_set(section="dms", name="session-shutdown-timeout", value=900)
    option_set(section="dms", name="session-shutdown-timeout", value=1200)
    option_set(section="channel", name="inbound-route-by-call", value="1:other", channel=channel)

    first, second, override = _entries(object_type="option")
    assert (first.action, first.object_id, first.tenant_id) == ("update", "dms/session-shutdown-timeout", None)
    assert first.changes["value"][1] == "900"
    assert second.action == "update" and second.changes == {"value": ["900", "1200"]}
    assert override.object_id == "channel/inbound-route-by-call@channel-whatsapp-REAL"
    assert override.tenant_id == channel.tenant_id
    assert override.changes == {"value": ["1:session-chat", "1:other"]}
    assert all(entry.username == "system" for entry in (first, second, override))  # no request: the server


@pytest.mark.django_db
def test_a_business_attribute_change_is_recorded_with_its_values(db):
    attribute = business_attribute_save(attribute=BusinessAttribute(name="Region", display_name="Region"),
                                        values=[{"name": "north"}])
    AuditEntry.objects.all().delete()

    attribute.display_name = "Sales region"
    business_attribute_save(attribute=attribute, values=[{"name": "north"}, {"name": "south"}])

    changed, values = _entries(object_type="business-attribute")
    assert (changed.action, changed.tenant_id, values.action) == ("update", None, "update")
    assert changed.changes == {"display_name": ["Region", "Sales region"]}
    before, after = values.changes["values"]
    assert [value["name"] for value in before] == ["north"]
    assert [value["name"] for value in after] == ["north", "south"]
    assert _entries(object_type="business-attribute-value") == []


@pytest.mark.django_db
def test_saving_an_attribute_with_the_same_values_records_nothing(db):
    attribute = business_attribute_save(attribute=BusinessAttribute(name="Region"), values=[{"name": "north"}])
    AuditEntry.objects.all().delete()

    business_attribute_save(attribute=attribute, values=[{"name": "north"}])

    assert _entries() == []


@pytest.mark.django_db
def test_standard_response_create_and_delete_are_recorded(tenant):
    response = _response(tenant)
    response.delete()

    created, deleted = _entries(object_type="standard-response")
    assert (created.action, created.object_id, created.tenant_id) == ("create", "AUDITRESPONSE001", tenant.id)
    assert created.changes["body"] == [None, "Hello"]
    assert (deleted.action, deleted.tenant_id) == ("delete", tenant.id)
    assert deleted.changes["name"] == ["Greeting", None]


@pytest.mark.django_db
def test_campaign_state_changes_are_recorded(channel):
    # given a draft campaign with one recipient
    response = _response(channel.tenant)
    campaign, _ = campaign_create(name="Bills", channel=channel, standard_response=response,
                                  rows=[{"client_id": "16315551002"}])
    AuditEntry.objects.all().delete()

    # when it is started and paused through the service
    campaign_transition(campaign_id=campaign.pk, action="start")
    campaign_transition(campaign_id=campaign.pk, action="pause")

    # then
    started, paused = _entries(object_type="campaign")
    assert (started.action, started.object_id, started.tenant_id) == ("state_change", str(campaign.pk),
                                                                      channel.tenant_id)
    assert started.changes["state"] == ["draft", "running"]
    assert "started_at" in started.changes
    assert paused.changes == {"state": ["running", "paused"]}


@pytest.mark.django_db
def test_the_servers_own_state_changes_are_recorded_as_system(channel):
    # given a campaign scheduled for a minute ago, with no recipient left to invite
    response = _response(channel.tenant)
    campaign, _ = campaign_create(name="Later", channel=channel, standard_response=response,
                                  rows=[{"client_id": "16315551002"}], start_at=timezone.now() + timedelta(hours=1))
    campaign_transition(campaign_id=campaign.pk, action="start")
    Campaign.objects.filter(pk=campaign.pk).update(start_at=timezone.now() - timedelta(minutes=1))
    campaign.recipients.update(error="refused")
    AuditEntry.objects.all().delete()

    # when the periodic tick starts it and its batch finds it done
    campaigns_tick()
    campaign_run_batch(campaign_id=campaign.pk)

    # then
    running, completed = _entries(object_type="campaign")
    assert running.changes == {"state": ["scheduled", "running"]}
    assert completed.changes == {"state": ["running", "completed"]}
    assert {(e.action, e.username, e.user_id, e.tenant_id) for e in (running, completed)} == {
        ("state_change", "system", None, channel.tenant_id)}


@pytest.mark.django_db
def test_internal_saves_of_a_campaign_are_not_recorded(channel):
    campaign, _ = campaign_create(name="Bills", channel=channel, standard_response=_response(channel.tenant))
    AuditEntry.objects.all().delete()

    campaign.heartbeat_at = timezone.now()
    campaign.throttle_next_slot = timezone.now()
    campaign.save(update_fields=["throttle_next_slot"])
    campaign.save()

    assert _entries() == []


@pytest.mark.django_db
def test_a_new_tenant_over_the_api_is_recorded(admin_user):
    response = _token_api(admin_user).post("/api/tenants/", {"id": 7, "name": "Seven"}, format="json")

    assert response.status_code == 201, response.content
    [entry] = _entries(object_type="tenant")
    assert (entry.action, entry.object_id, entry.tenant_id, entry.username) == ("create", "7", 7, "root")
    assert entry.changes == {"name": [None, "Seven"], "timezone": [None, "UTC"]}  # the default zone, recorded


@pytest.mark.django_db
def test_deleting_a_tenant_keeps_its_entries_without_it(admin_user, django_user_model):
    tenant = Tenant.objects.create(id=8, name="Eight")
    Membership.objects.create(user=admin_user, tenant=tenant)

    tenant.delete()

    assert [(e.object_type, e.action, e.tenant_id) for e in _entries(object_type__in=["tenant", "membership"])] == [
        ("tenant", "create", None), ("membership", "create", None), ("membership", "delete", None),
        ("tenant", "delete", None)]


@pytest.mark.django_db
def test_user_group_changes_are_recorded_with_the_password_masked(django_user_model):
    agents = Group.objects.create(name="Agents of audit")
    user = django_user_model.objects.create_user("ann", password="ann-pass-123")

    user.groups.add(agents)
    agents.permissions.add(Permission.objects.get(codename="view_auditentry"))
    user.set_password("ann-new-pass-456")
    user.save()

    created = _entries(object_type="user", action="create")[0]
    assert created.changes["password"] == [None, MASK] and created.changes["username"] == [None, "ann"]
    groups, password = _entries(object_type="user", action="update")
    assert groups.changes == {"groups": [[], ["Agents of audit"]]}
    assert password.changes == {"password": [MASK, MASK]}
    [permissions] = _entries(object_type="group", action="update")
    assert permissions.changes == {"permissions": [[], ["channels_app.view_auditentry"]]}
    assert "ann-pass" not in json.dumps([e.changes for e in _entries()])


def _grants() -> list[tuple]:
    """(object_type, action, tenant, what changed) of the membership and group entries, oldest first."""
    return [(e.object_type, e.action, e.tenant_id, e.changes.get("groups") or e.changes.get("tenant"), e.username)
            for e in _entries(object_type__in=["membership", "user"]) if e.object_type == "membership"
            or "groups" in e.changes]


@pytest.mark.django_db
def test_granting_and_revoking_tenants_and_groups_over_the_api_is_recorded(tenant, admin_user):
    # given a second tenant and a superuser's token
    Tenant.objects.create(id=2, name="Two")
    api = _token_api(admin_user, REMOTE_ADDR="203.0.113.7")
    AuditEntry.objects.all().delete()

    # when a user is created with a group and a tenant, then moved to the other tenant and given no group
    created = api.post("/api/users/", {"username": "newcomer", "password": "newcomer-pass-123",
                                       "groups": ["WhatsApp agent"], "tenants": [1]}, format="json")
    assert created.status_code == 201, created.content
    changed = api.patch(f"/api/users/{created.json()['id']}/", {"tenants": [2], "groups": []}, format="json")
    assert changed.status_code == 200, changed.content

    # then every grant and every revocation has its entry, by whom and from where
    assert _grants() == [
        ("user", "update", None, [[], ["WhatsApp agent"]], "root"),
        ("membership", "create", 1, [None, 1], "root"),
        ("user", "update", None, [["WhatsApp agent"], []], "root"),
        ("membership", "delete", 1, [1, None], "root"),
        ("membership", "create", 2, [None, 2], "root"),
    ]
    assert {e.remote_addr for e in _entries()} == {"203.0.113.7"}
    assert _entries(object_type="membership")[0].object_repr == "newcomer in tenant 1"


@pytest.mark.django_db
def test_granting_and_revoking_tenants_and_groups_in_the_admin_is_recorded(tenant, admin_user, django_user_model):
    # given a user of tenant 1 in no group, and a second tenant
    Tenant.objects.create(id=2, name="Two")
    user = django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True)
    membership = Membership.objects.create(user=user, tenant=tenant)
    agents = Group.objects.get(name="WhatsApp agent")
    browser = Client(REMOTE_ADDR="203.0.113.8")
    browser.force_login(admin_user)
    AuditEntry.objects.all().delete()

    # when the user page gives it a group and tenant 2 and takes tenant 1 away
    response = browser.post(f"/admin/auth/user/{user.pk}/change/", {
        "username": "clerk", "is_active": "on", "is_staff": "on", "groups": [agents.pk],
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": membership.pk, "memberships-0-user": user.pk, "memberships-0-tenant": 1,
        "memberships-0-DELETE": "on",
        "memberships-1-user": user.pk, "memberships-1-tenant": 2,
    })
    assert response.status_code == 302, response.content[:3000]
    # and the tenant page gives it tenant 1 back
    response = browser.post("/admin/channels_app/tenant/1/change/", {
        "name": tenant.name, "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-0-user": user.pk, "memberships-0-tenant": 1,
    })
    assert response.status_code == 302, response.content[:3000]

    # then
    assert sorted(_grants()) == sorted([
        ("user", "update", None, [[], ["WhatsApp agent"]], "root"),
        ("membership", "delete", 1, [1, None], "root"),
        ("membership", "create", 2, [None, 2], "root"),
        ("membership", "create", 1, [None, 1], "root"),
    ])
    assert {e.remote_addr for e in _entries()} == {"203.0.113.8"}


@pytest.mark.django_db
def test_a_token_revocation_is_recorded_with_its_actor_and_address(admin_user):
    api = _token_api(admin_user, REMOTE_ADDR="203.0.113.9")

    assert api.delete("/api/auth/token/").status_code == 204

    [entry] = _entries(object_type="token")
    assert (entry.action, entry.object_id, entry.username, entry.remote_addr) == (
        "revoke", str(admin_user.pk), "root", "203.0.113.9")
    assert entry.tenant_id is None


@pytest.mark.django_db
def test_the_address_honours_num_proxies(admin_user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    api = _token_api(admin_user, REMOTE_ADDR="10.0.0.2")

    api.delete("/api/auth/token/", HTTP_X_FORWARDED_FOR="198.51.100.77, 203.0.113.20")

    assert _entries(object_type="token")[0].remote_addr == "203.0.113.20"


# --- reading the log -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_filters_by_object_and_user(tenant, admin_user, django_user_model):
    api = _token_api(admin_user)
    assert api.post("/api/channels/", _channel_body(), format="json").status_code == 201
    assert api.patch("/api/channels/channel-audit/", {"name": "Renamed"}, format="json").status_code == 200
    option_set(section="dms", name="session-shutdown-timeout", value=900)  # by "system"

    by_object = api.get("/api/audit-log/", {"object_type": "channel", "object_id": "channel-audit"}).json()
    by_user_id = api.get("/api/audit-log/", {"user": admin_user.pk}).json()
    by_username = api.get("/api/audit-log/", {"user": "system"}).json()

    assert [e["action"] for e in by_object["results"]] == ["update", "update", "create"]  # newest first
    first = by_object["results"][0]
    assert set(first) == {"id", "at", "user", "username", "remote_addr", "action", "object_type", "object_id",
                          "object_repr", "changes", "tenant"}
    assert first["changes"] == {"name": ["Audit", "Renamed"]} and first["tenant"] == tenant.id
    assert by_user_id["count"] >= 2 and {e["username"] for e in by_user_id["results"]} == {"root"}
    assert "option" in {e["object_type"] for e in by_username["results"]}
    assert {e["username"] for e in by_username["results"]} == {"system"}
    entry_id = by_object["results"][0]["id"]
    assert api.get(f"/api/audit-log/{entry_id}/").json()["object_id"] == "channel-audit"


@pytest.mark.django_db
def test_a_tenant_member_sees_the_entries_of_its_tenants_only(tenant, django_user_model):
    # given entries of tenants 1 and 2 and an installation-wide one
    other = Tenant.objects.create(id=2, name="Other")
    _response(tenant, "TENANTONERESP001")
    _response(other, "TENANTTWORESP001")
    option_set(section="dms", name="session-shutdown-timeout", value=900)
    member = django_user_model.objects.create_user("member", password="member-pass-123")
    member.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    Membership.objects.create(user=member, tenant=tenant)

    # when
    page = _token_api(member).get("/api/audit-log/").json()

    # then
    assert page["results"] and {e["tenant"] for e in page["results"]} == {tenant.id}
    hidden = AuditEntry.objects.filter(tenant=other).first()
    assert _token_api(member).get(f"/api/audit-log/{hidden.pk}/").status_code == 404


@pytest.mark.django_db
def test_the_log_needs_view_auditentry(tenant, django_user_model, anonymous_api):
    user = django_user_model.objects.create_user("plain", password="plain-pass-123", is_staff=True)
    Membership.objects.create(user=user, tenant=tenant)

    assert _token_api(user).get("/api/audit-log/").status_code == 403
    assert anonymous_api.get("/api/audit-log/").status_code == 401


@pytest.mark.django_db
def test_the_log_is_read_only(admin_user):
    api = _token_api(admin_user)

    assert api.post("/api/audit-log/", {}, format="json").status_code == 405
    assert api.delete("/api/audit-log/1/").status_code in (404, 405)


@pytest.mark.django_db
def test_the_admin_page_is_read_only_and_scoped(tenant, django_user_model):
    # given a staff member of tenant 1 who may view the log, and entries of tenants 1 and 2
    other = Tenant.objects.create(id=2, name="Other tenant name")
    _response(tenant, "TENANTONERESP001")
    _response(other, "TENANTTWORESP001")
    staff = django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    Membership.objects.create(user=staff, tenant=tenant)
    browser = Client()
    assert browser.post("/admin/login/", {"username": "staff", "password": "staff-pass-123"}).status_code == 302

    # when
    page = browser.get("/admin/channels_app/auditentry/")

    # then
    assert page.status_code == 200
    assert b"TENANTONERESP001" in page.content and b"TENANTTWORESP001" not in page.content
    assert b"Other tenant name" not in page.content  # not even in the tenant filter
    assert browser.get("/admin/channels_app/auditentry/add/").status_code == 403
    mine = AuditEntry.objects.filter(tenant=tenant).first()
    theirs = AuditEntry.objects.filter(tenant=other).first()
    assert browser.get(f"/admin/channels_app/auditentry/{mine.pk}/change/").status_code == 200
    assert browser.get(f"/admin/channels_app/auditentry/{theirs.pk}/change/").status_code == 302  # "doesn't exist"
    assert browser.post(f"/admin/channels_app/auditentry/{mine.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_the_hot_path_models_are_not_audited():
    from channels_app.audit import AUDITED
    from channels_app.models import CampaignRecipient, Contact, Delivery, Interaction, Message

    assert not {Message, Delivery, CampaignRecipient, Interaction, Contact} & set(AUDITED)
    assert Channel in AUDITED and MediaType.WHATSAPP and Transport.WEBHOOK


@pytest.mark.django_db
def test_a_standard_responses_attachments_and_a_groups_members_are_recorded(tenant, django_user_model):
    from django.core.files.base import ContentFile

    from channels_app.models import Attachment

    # given
    attachment = Attachment.objects.create(tenant=tenant, file=ContentFile(b"%PDF-1.4", name="bill.pdf"),
                                           name="bill.pdf", kind="document", mime_type="application/pdf", size=8)
    response = _response(tenant)
    agents = Group.objects.create(name="Agents of audit")
    user = django_user_model.objects.create_user("bob", password="bob-pass-123")
    AuditEntry.objects.all().delete()

    # when
    response.attachments.add(attachment)
    agents.user_set.add(user)  # from the group's side

    # then
    [attached] = _entries(object_type="standard-response")
    assert attached.changes == {"attachments": [[], ["bill.pdf (application/pdf, 8 bytes)"]]}
    assert attached.tenant_id == tenant.id
    [members] = _entries(object_type="group")
    assert members.changes == {"users": [[], ["bob"]]}
