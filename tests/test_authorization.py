"""The authorization suite (API.md, "Who may do what").

* Every door has a rule: each registered API, ESP, /nexus and admin extra
  URL maps to a rule of `channels_app.rights.RIGHTS`, so a new endpoint
  without one fails here.
* Every default group is held to the table on every endpoint: allowed means
  anything but 403, refused means 403 (ESP: code 904).
* Tenants are walls: another tenant's objects are 404 (902 on ESP) for a
  member of the first tenant, whatever its permissions, and never listed.
"""

import io
from datetime import timedelta

import pytest
from django.contrib.admin.sites import site as admin_site
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from channels_app.choices import MediaType, Transport
from channels_app.models import (
    Campaign,
    Channel,
    Interaction,
    Offer,
    Queue,
    QueueRouting,
    Segment,
    StandardResponse,
    Tenant,
)
from channels_app.rights import RIGHTS, Rule
from channels_app.services.interactions import message_queue_outbound
from channels_app.services.roles import DEFAULT_GROUPS
from channels_app.services.standard_responses import attachment_create
from tests.conftest import member
from tests.factories import (
    CampaignFactory,
    ChannelFactory,
    InteractionFactory,
    StandardResponseCategoryFactory,
    StandardResponseFactory,
    TenantFactory,
)

ROLES = [*DEFAULT_GROUPS, None]  # None: a user in no group at all
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40

# Admin pages every model admin has; their permissions are the model's own (Django checks them).
STANDARD_ADMIN_SUFFIXES = ("_changelist", "_add", "_change", "_delete", "_history", "_password_change")
ADMIN_SITE_VIEWS = {"index", "login", "logout", "password_change", "password_change_done", "jsi18n", "app_list",
                    "autocomplete", "view_on_site"}


# --- every door has a rule ------------------------------------------------------------------------------------


def _walk(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern


def door_keys(namespace: str, pattern: URLPattern) -> list[str] | None:
    """The rights-table keys of one URL pattern (None: a standard admin page, checked by Django)."""
    callback = pattern.callback
    cls = getattr(callback, "cls", None)
    if namespace == "admin:":
        # Unnamed admin patterns are the site's own redirects (catch-all, object id shortcut).
        if pattern.name is None or pattern.name in ADMIN_SITE_VIEWS or pattern.name.endswith(STANDARD_ADMIN_SUFFIXES):
            return None
        return [f"admin:{pattern.name}"]
    if cls is not None and getattr(callback, "actions", None):
        name = getattr(cls, "rights_name", None) or callback.initkwargs.get("basename")
        served = {action for method, action in callback.actions.items() if method in cls.http_method_names}
        return [f"{name}.{action}" for action in sorted(served)]
    if cls is not None and getattr(cls, "rights_name", None):
        methods = [m for m in cls.http_method_names if m not in ("options", "head") and hasattr(cls, m)]
        return [f"{cls.rights_name}.{method}" for method in methods]
    return [f"{pattern.name}.get"] if pattern.name else [f"unnamed:{pattern.pattern}"]


def test_every_registered_door_has_a_rule():
    doors, missing = set(), []
    for namespace, pattern in _walk(get_resolver().url_patterns):
        if str(pattern.pattern).startswith("static/"):
            continue
        for key in door_keys(namespace, pattern) or ():
            doors.add(key)
            if key not in RIGHTS:
                missing.append(f"{namespace}{pattern.pattern} -> {key}")

    assert not missing, "doors without a rule in channels_app/rights.py:\n" + "\n".join(sorted(set(missing)))
    assert len(doors) > 60


def test_every_rule_names_permissions_that_exist():
    from django.contrib.auth.models import Permission

    known = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    named = {permission for rule in RIGHTS.values() for permission in rule.permissions}

    assert named - known == set()


test_every_rule_names_permissions_that_exist = pytest.mark.django_db(test_every_rule_names_permissions_that_exist)


# --- the objects every request hits ---------------------------------------------------------------------------


def _world(tenant_id: int, suffix: str) -> dict:
    """A tenant holding one of everything: a WhatsApp channel, a category, a response, an attachment, a customer
    conversation and a draft campaign."""
    tenant = TenantFactory(id=tenant_id, name=f"Tenant {suffix}")
    channel = ChannelFactory(
        channel_id=f"channel-{suffix}", name=suffix, tenant=tenant, media_type=MediaType.WHATSAPP,
        transport=Transport.SIMULATOR, business_id="19251112222",
        endpoints=[f"{tenant_id}:session-chat"], inbound_route_by_call=f"{tenant_id}:session-chat",
    )
    category = StandardResponseCategoryFactory(tenant=tenant, name=f"Category {suffix}")
    response = StandardResponseFactory(
        id=f"RESP{suffix}", tenant=tenant, name="Hello", content_type="text", body="Hello", category=category
    )
    attachment = attachment_create(
        tenant=tenant, uploaded_file=SimpleUploadedFile("pixel.png", PNG, "image/png"), name="pixel.png"
    )
    interaction = InteractionFactory(
        channel=channel, client_id="15556667777", queue=f"{tenant_id}:session-chat", outbound=False, user_data={},
    )
    contact = interaction.contact
    campaign = CampaignFactory(name=f"Campaign {suffix}", channel=channel, standard_response=response)
    # A delivery of its own conversation: the first one's transcript stays empty.
    answered = InteractionFactory(
        channel=channel, client_id="15556667778", queue=f"{tenant_id}:session-chat", outbound=False, user_data={},
    )
    reply = message_queue_outbound(interaction=answered, payload={"text": "Hello"})
    someone = member(f"someone-{suffix}", tenants=[tenant])
    # Routed outside: the agents of the matrix send to its interactions as before (an offer is there to answer).
    queue = Queue.objects.create(tenant=tenant, key=f"{tenant_id}:session-chat", routing=QueueRouting.EXTERNAL)
    queue.agents.add(someone)
    offer = Offer.objects.create(interaction=interaction, queue=queue, agent=someone,
                                 expires_at=timezone.now() + timedelta(minutes=5))
    segment = Segment.objects.create(tenant=tenant, name=f"Segment {suffix}", filter={"countries": ["US"]})
    return {
        "tenant": tenant.pk, "channel": channel.channel_id, "category": category.pk, "response": response.pk,
        "attachment": attachment.pk, "contact": contact.pk, "interaction": interaction.pk,
        "campaign": campaign.pk, "user": someone.pk, "delivery": reply.delivery.pk,
        "answered": answered.pk, "channel_pk": channel.pk, "queue": queue.key, "offer": offer.pk,
        "segment": segment.pk,
    }


@pytest.fixture
def home(db):
    return _world(1, "home")


@pytest.fixture
def away(db, home):
    return _world(2, "away")


# key -> (method, path, body); paths name the objects of a world with {channel}, {response}, ...
REQUESTS: dict[str, tuple[str, str, object]] = {
    "api-root.get": ("get", "/api/", None),
    "auth-token.post": ("post", "/api/auth/token/", {"username": "nobody", "password": "wrong"}),
    "auth-token.delete": ("delete", "/api/auth/token/", None),
    # Signing in (tests/test_sign_in.py walks them): without a pending sign-in or a configured provider.
    "sign-in-oidc.get": ("get", "/sign-in/oidc/", None),
    "sign-in-oidc-callback.get": ("get", "/sign-in/oidc/callback/", None),
    "sign-in-code.get": ("get", "/sign-in/code/", None),
    "sign-in-enrol.get": ("get", "/sign-in/enrol/", None),
    "tenant.list": ("get", "/api/tenants/", None),
    "tenant.retrieve": ("get", "/api/tenants/{tenant}/", None),
    "tenant.create": ("post", "/api/tenants/", {"name": "Created"}),
    "tenant.update": ("put", "/api/tenants/{tenant}/", {"id": "{tenant}", "name": "Renamed"}),
    "tenant.partial_update": ("patch", "/api/tenants/{tenant}/", {"name": "Renamed"}),
    "tenant.destroy": ("delete", "/api/tenants/{tenant}/", None),
    "channel.list": ("get", "/api/channels/", None),
    "channel.retrieve": ("get", "/api/channels/{channel}/", None),
    "channel.create": ("post", "/api/channels/", {
        "channel_id": "channel-new", "name": "New", "media_type": "sms", "transport": "simulator",
        "business_id": "12345", "tenant": "{tenant}"}),
    "channel.update": ("put", "/api/channels/{channel}/", {
        "channel_id": "{channel}", "name": "Renamed", "media_type": "whatsapp", "transport": "simulator",
        "business_id": "19251112222", "tenant": "{tenant}"}),
    "channel.partial_update": ("patch", "/api/channels/{channel}/", {"webhook_url": "https://attacker.example/"}),
    "channel.destroy": ("delete", "/api/channels/{channel}/", None),
    "channel.rotate_secret": ("post", "/api/channels/{channel}/rotate-secret/", None),
    "channel.rotate_verify_token": ("post", "/api/channels/{channel}/rotate-verify-token/", None),
    "channel.sync_templates": ("post", "/api/channels/{channel}/sync-templates/", None),
    "option.list": ("get", "/api/options/?channel={channel}", None),
    "option.retrieve": ("get", "/api/options/channel/inbound-route-by-call/?channel={channel}", None),
    "option.partial_update": ("patch", "/api/options/dms/simulator-auto-reply/",
                              {"value": "false", "channel": "{channel}"}),
    "option.destroy": ("delete", "/api/options/dms/simulator-auto-reply/?channel={channel}", None),
    "business-attribute.list": ("get", "/api/business-attributes/", None),
    "business-attribute.retrieve": ("get", "/api/business-attributes/{business_attribute}/", None),
    "business-attribute.create": ("post", "/api/business-attributes/", {"name": "Colour"}),
    "business-attribute.update": ("put", "/api/business-attributes/{business_attribute}/", {"name": "Emojis"}),
    "business-attribute.partial_update": ("patch", "/api/business-attributes/{business_attribute}/",
                                          {"description": "changed"}),
    "business-attribute.destroy": ("delete", "/api/business-attributes/{business_attribute}/", None),
    "standard-response.list": ("get", "/api/standard-responses/", None),
    "standard-response.retrieve": ("get", "/api/standard-responses/{response}/", None),
    "standard-response.create": ("post", "/api/standard-responses/", {
        "name": "New", "content_type": "text", "body": "Hi", "category": "{category}"}),
    "standard-response.update": ("put", "/api/standard-responses/{response}/", {
        "id": "{response}", "name": "Renamed", "content_type": "text", "body": "Hi"}),
    "standard-response.partial_update": ("patch", "/api/standard-responses/{response}/", {"body": "Changed"}),
    "standard-response.destroy": ("delete", "/api/standard-responses/{response}/", None),
    "standard-response.render": ("post", "/api/standard-responses/{response}/render/", {"fields": {}}),
    "standard-response.submit": ("post", "/api/standard-responses/{response}/submit/", {"channel": "{channel}"}),
    "standard-response-category.list": ("get", "/api/standard-response-categories/", None),
    "standard-response-category.retrieve": ("get", "/api/standard-response-categories/{category}/", None),
    "standard-response-category.create": ("post", "/api/standard-response-categories/", {"name": "New"}),
    "standard-response-category.update": ("put", "/api/standard-response-categories/{category}/", {"name": "R"}),
    "standard-response-category.partial_update": ("patch", "/api/standard-response-categories/{category}/",
                                                  {"name": "R"}),
    "standard-response-category.destroy": ("delete", "/api/standard-response-categories/{category}/", None),
    "attachment.list": ("get", "/api/attachments/", None),
    "attachment.retrieve": ("get", "/api/attachments/{attachment}/", None),
    "attachment.create": ("upload", "/api/attachments/", None),
    "attachment.destroy": ("delete", "/api/attachments/{attachment}/", None),
    "emojis.get": ("get", "/api/emojis/?channel={channel}", None),
    "user.list": ("get", "/api/users/", None),
    "user.retrieve": ("get", "/api/users/{user}/", None),
    "user.create": ("post", "/api/users/", {"username": "created", "password": "a-long-pass-123", "groups": [],
                                            "tenants": []}),
    "user.partial_update": ("patch", "/api/users/{user}/", {"email": "a@example.com"}),
    "user.destroy": ("delete", "/api/users/{user}/", None),
    "audit-log.list": ("get", "/api/audit-log/", None),
    "audit-log.retrieve": ("get", "/api/audit-log/999999/", None),
    "interaction.list": ("get", "/api/interactions/", None),
    "interaction.retrieve": ("get", "/api/interactions/{interaction}/", None),
    "interaction.messages": ("post", "/api/interactions/{interaction}/messages/", {"text": "Hello from an agent"}),
    "interaction.end": ("post", "/api/interactions/{interaction}/end/", {}),
    "interaction.history": ("get", "/api/interactions/{interaction}/history/", None),
    "interaction.sessions": ("post", "/api/interactions/{interaction}/sessions/",
                             {"channel": "{channel}", "text": "Hello again"}),
    "interaction-transfer.post": ("post", "/api/interactions/{interaction}/transfer/", {"agent": "{user}"}),
    "interaction-conference.post": ("post", "/api/interactions/{interaction}/conference/", {"agent": "{user}"}),
    "interaction-notes.get": ("get", "/api/interactions/{interaction}/notes/", None),
    "interaction-notes.post": ("post", "/api/interactions/{interaction}/notes/", {"text": "Called back"}),
    "queue.list": ("get", "/api/queues/", None),
    "queue.retrieve": ("get", "/api/queues/{queue}/", None),
    "queue.create": ("post", "/api/queues/", {"key": "{tenant}:billing", "routing": "workspace"}),
    "queue.update": ("put", "/api/queues/{queue}/", {"key": "{queue}", "routing": "external"}),
    "queue.partial_update": ("patch", "/api/queues/{queue}/", {"offer_timeout_seconds": 5}),
    "queue.destroy": ("delete", "/api/queues/{queue}/", None),
    "agent-me.get": ("get", "/api/agents/me/", None),
    "agent-me.patch": ("patch", "/api/agents/me/", {"ready": {"whatsapp": True}, "capacity": 2}),
    "agent-offers.get": ("get", "/api/agents/me/offers/", None),
    "agent-events.get": ("get", "/api/agents/me/events/", None),  # the test client is WSGI: 421 once allowed
    "agents.get": ("get", "/api/agents/", None),
    "agent-interactions.get": ("get", "/api/agents/me/interactions/", None),
    "interaction-session-channels.get": ("get", "/api/interactions/{interaction}/session-channels/", None),
    "workspace.get": ("page", "/workspace/", None),  # the agents' page: signed in with a session, not a token
    "offer.accept": ("post", "/api/offers/{offer}/accept/", None),  # someone else's: 404 when allowed
    "offer.reject": ("post", "/api/offers/{offer}/reject/", None),
    "contact.list": ("get", "/api/contacts/", None),
    "contact.retrieve": ("get", "/api/contacts/{contact}/", None),
    "contact.partial_update": ("patch", "/api/contacts/{contact}/", {"opted_out": ["{channel}"]}),
    "contact-erase.post": ("post", "/api/contacts/{contact}/erase/", None),
    "contact-export.get": ("get", "/api/contacts/{contact}/export/", None),
    "report-conversations.get": ("get", "/api/reports/conversations/?group_by=agent", None),
    "report-deliveries.get": ("get", "/api/reports/deliveries/", None),
    "campaign.list": ("get", "/api/campaigns/", None),
    "campaign.retrieve": ("get", "/api/campaigns/{campaign}/", None),
    "campaign.create": ("post", "/api/campaigns/", {
        "name": "New", "channel": "{channel}", "standard_response": "{response}",
        "recipients": [{"client_id": "15556667777"}]}),
    "campaign.destroy": ("delete", "/api/campaigns/{campaign}/", None),
    "campaign.recipients": ("get", "/api/campaigns/{campaign}/recipients/", None),
    "campaign.add_recipients": ("post", "/api/campaigns/{campaign}/recipients/",
                                {"recipients": [{"client_id": "15556667778"}]}),
    "campaign.results_csv": ("get", "/api/campaigns/{campaign}/results/", None),
    "campaign.start": ("post", "/api/campaigns/{campaign}/start/", None),
    "campaign.pause": ("post", "/api/campaigns/{campaign}/pause/", None),
    "campaign.resume": ("post", "/api/campaigns/{campaign}/resume/", None),
    "campaign.cancel": ("post", "/api/campaigns/{campaign}/cancel/", None),
    "report-campaign.get": ("get", "/api/reports/campaigns/{campaign}/", None),
    "segment.list": ("get", "/api/segments/", None),
    "segment.retrieve": ("get", "/api/segments/{segment}/", None),
    "segment.create": ("post", "/api/segments/", {"name": "New", "tenant": "{tenant}",
                                                  "filter": {"channels": ["{channel}"]}}),
    "segment.update": ("put", "/api/segments/{segment}/", {"name": "Renamed", "filter": {}}),
    "segment.partial_update": ("patch", "/api/segments/{segment}/", {"filter": {"countries": ["NL"]}}),
    "segment.destroy": ("delete", "/api/segments/{segment}/", None),
    "segment.preview": ("get", "/api/segments/{segment}/preview/", None),
    "esp.post": ("post", "/esp", {"AppName": "suite", "Service": "Messaging", "Method": "ValidateContact",
                                  "Parameters": {"_umsChannel": "{channel}", "Id": "+1 631 555 1002"}}),
    "nexus-messages.post": ("post", "/nexus/v3/channels/{channel}/messages", {"messages": []}),
    "whatsapp-webhook.get": ("get", "/whatsapp/{channel}/webhook?hub.mode=subscribe&hub.verify_token=x", None),
    "whatsapp-webhook.post": ("post", "/whatsapp/{channel}/webhook", {"object": "whatsapp_business_account"}),
    "healthz.get": ("get", "/healthz", None),
    "home.get": ("get", "/", None),
    "metrics.get": ("get", "/metrics", None),
    "media-file.get": ("get", "/media/{attachment_path}", None),
    "media-link.get": ("get", "{attachment_link}", None),  # a signed link: whoever holds it
}
# Rules for content, not doors: checked where the content is sent (the agent message below).
CONTENT_RULES = {key for key in RIGHTS if key.startswith("agent.")}
NOT_REQUESTED = {"schema.get", "api-docs.get"}  # public documents; generating them costs seconds


def _fill(template, world: dict):
    from channels_app.models import Attachment, BusinessAttribute
    from channels_app.signed_links import signed_path

    attachment = Attachment.objects.get(pk=world["attachment"])
    values = {**world, "business_attribute": BusinessAttribute.objects.get(name="Emojis").pk,
              "attachment_path": attachment.file.name,
              "attachment_link": signed_path(storage_name=attachment.file.name, content_type=attachment.mime_type,
                                             file_name=attachment.name)}
    if isinstance(template, str):
        text = template.format(**values)
        return int(text) if template in ("{tenant}", "{user}") else text
    if isinstance(template, dict):
        return {key: _fill(value, world) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(item, world) for item in template]
    return template


def call(client: APIClient, key: str, world: dict):
    method, path, body = REQUESTS[key]
    path = _fill(path, world)
    if method == "upload":
        upload = io.BytesIO(PNG)
        upload.name = "pixel.png"
        return client.post(path, {"file": upload}, format="multipart")
    if method == "page":  # a page of the browser: the same user, signed in with a session
        client.force_login(Token.objects.get(key=client._credentials["HTTP_AUTHORIZATION"].split()[1]).user)
        return client.get(path)
    return getattr(client, method)(path, _fill(body, world), format="json")


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def expected_rule(key: str) -> tuple[Rule, ...]:
    rules = (RIGHTS[key],)
    if key in ("interaction.messages", "interaction.sessions"):  # the home channel is a WhatsApp channel
        rules += (RIGHTS["agent.whatsapp"],)
    if key == "contact.partial_update":  # the request changes the contact's opt-outs
        rules += (RIGHTS["agent.change_opt_outs"],)
    return rules


def test_every_rule_is_requested_by_the_suite():
    door_rules = {key for key in RIGHTS if not key.startswith("admin:")} - CONTENT_RULES - NOT_REQUESTED
    assert door_rules - set(REQUESTS) == set()


MATRIX = [(role, key) for role in ROLES for key in REQUESTS]


@pytest.mark.slow  # hundreds of cases, each with two tenants' worlds: CI runs them, test-fast does not
@pytest.mark.django_db
@pytest.mark.parametrize(("role", "key"), MATRIX, ids=[f"{role or 'no-group'}:{key}" for role, key in MATRIX])
def test_each_default_group_is_held_to_the_table(home, role, key):
    user = member("caller", *([role] if role else []), tenants=[Tenant.objects.get(pk=home["tenant"])])
    allowed = all(rule.allows(user) for rule in expected_rule(key))

    response = call(client_of(user), key, home)

    if allowed:
        assert response.status_code != 403, (response.status_code, response.content[:300])
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])
        if key == "esp.post":
            assert response.json()["Error"]["Code"] == 904
            assert "use_esp" in response.json()["Error"]["Message"]


# --- tenants are walls ---------------------------------------------------------------------------------------

DETAIL_KEYS = [key for key, (_, path, _) in REQUESTS.items()
               if any(name in path for name in ("{tenant}/", "{channel}", "{response}", "{category}", "{attachment}",
                                                "{interaction}", "{contact}", "{campaign}", "{user}", "{queue}",
                                                "{offer}", "{segment}"))
               and key not in ("esp.post", "nexus-messages.post", "whatsapp-webhook.get", "whatsapp-webhook.post")]


@pytest.mark.slow  # hundreds of cases, each with two tenants' worlds: CI runs them, test-fast does not
@pytest.mark.django_db
@pytest.mark.parametrize("key", DETAIL_KEYS)
def test_another_tenants_objects_do_not_exist_for_a_member_with_every_permission(home, away, key):
    everything = [name for name in DEFAULT_GROUPS]
    user = member("caller", *everything, tenants=[Tenant.objects.get(pk=home["tenant"])])
    user.user_permissions.add(Permission.objects.get(codename="view_reports"))  # every permission: reports too
    before = _snapshot(away)

    response = call(client_of(user), key, away)

    if key.startswith("option.") or key == "emojis.get":  # a channel named in a field: an unknown channel
        assert response.status_code == 400, response.content[:300]
        assert "Unknown channel" in response.content.decode()
    elif key in ("channel.create", "campaign.create", "standard-response.create", "segment.create"):
        assert response.status_code == 400, response.content[:300]  # the other tenant's ids "do not exist"
    else:
        assert response.status_code == 404, (response.status_code, response.content[:300])
    assert _snapshot(away) == before


def _snapshot(world: dict) -> tuple:
    channel = Channel.objects.get(channel_id=world["channel"])
    return (
        channel.webhook_url, channel.secret, channel.name,
        StandardResponse.objects.filter(pk=world["response"]).values_list("body", flat=True).first(),
        Campaign.objects.filter(pk=world["campaign"]).values_list("state", flat=True).first(),
        Interaction.objects.get(pk=world["interaction"]).messages.count(),
        Interaction.objects.get(pk=world["interaction"]).notes.count(),
        Queue.objects.filter(key=world["queue"]).values_list("routing", "offer_timeout_seconds").first(),
        Offer.objects.get(pk=world["offer"]).state,
        Segment.objects.filter(pk=world["segment"]).values_list("name", "filter").first(),
    )


LIST_PATHS = ["/api/tenants/", "/api/channels/", "/api/standard-responses/", "/api/standard-response-categories/",
              "/api/attachments/", "/api/interactions/", "/api/contacts/", "/api/campaigns/", "/api/queues/",
              "/api/segments/", "/api/users/"]  # the last: a user sees themselves


@pytest.mark.django_db
def test_lists_hold_only_the_callers_tenants(home, away):
    user = member("caller", *DEFAULT_GROUPS, tenants=[Tenant.objects.get(pk=home["tenant"])])
    client = client_of(user)

    for path in LIST_PATHS:
        body = client.get(path).content.decode()
        assert "away" not in body.lower() and "RESPaway" not in body, path


@pytest.mark.django_db
def test_a_superuser_sees_every_tenant(home, away, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="root-pass-123")

    channels = client_of(root).get("/api/channels/").json()["results"]

    assert {c["channel_id"] for c in channels} == {"channel-home", "channel-away"}


@pytest.mark.django_db
def test_esp_channel_of_another_tenant_is_an_unknown_channel(home, away):
    user = member("strategy", "ESP client", tenants=[Tenant.objects.get(pk=home["tenant"])])
    body = {"ReferenceId": 3, "AppName": "suite", "Service": "ChatService", "Method": "InviteToChat",
            "Parameters": {"_umsChannel": "channel-away", "_umsClientId": "15556667777"}}

    response = client_of(user).post("/esp", body, format="json")

    assert response.status_code == 404
    assert response.json()["Error"]["Code"] == 902
    assert not Interaction.objects.filter(channel__channel_id="channel-away").exclude(
        pk__in=[away["interaction"], away["answered"]]).exists()


@pytest.mark.django_db
def test_a_channel_kept_for_its_own_tenant_stays_unknown_to_another(home, away):
    # given the channel was read, and kept (selectors.channels_by_id), for a caller of its own tenant
    owner = member("strategy-away", "ESP client", tenants=[Tenant.objects.get(pk=away["tenant"])])
    body = {"ReferenceId": 4, "AppName": "suite", "Service": "ChatService", "Method": "InviteToChat",
            "Parameters": {"_umsChannel": "channel-away", "_umsClientId": "15556667777"}}
    assert "Result" in client_of(owner).post("/esp", body, format="json").json()

    # then a caller of another tenant still finds no such channel
    stranger = member("strategy-home", "ESP client", tenants=[Tenant.objects.get(pk=home["tenant"])])
    response = client_of(stranger).post("/esp", body, format="json")
    assert (response.status_code, response.json()["Error"]["Code"]) == (404, 902)


@pytest.mark.django_db
def test_a_user_in_no_tenant_sees_nothing(home, away):
    user = member("loner", *DEFAULT_GROUPS)
    client = client_of(user)

    for path in LIST_PATHS[:-1]:
        assert client.get(path).json()["count"] == 0, path
    assert client.post("/esp", _fill(REQUESTS["esp.post"][2], home), format="json").json()["Error"]["Code"] == 902


@pytest.mark.django_db
def test_removing_a_membership_takes_effect_on_the_next_request(home):
    from channels_app.models import Membership

    user = member("agent", "WhatsApp agent", tenants=[Tenant.objects.get(pk=home["tenant"])])
    client = client_of(user)
    assert client.get(f"/api/interactions/{home['interaction']}/").status_code == 200

    Membership.objects.filter(user=user).delete()

    assert client.get(f"/api/interactions/{home['interaction']}/").status_code == 404


# --- the attacks of issue 11 -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_plain_token_reads_no_transcript_and_sends_nothing(home, django_user_model):
    plain = django_user_model.objects.create_user("plain", password="plain-pass-123")
    client = client_of(plain)

    assert client.get("/api/interactions/").status_code == 403
    assert client.get(f"/api/interactions/{home['interaction']}/").status_code == 403
    assert client.get("/api/contacts/").status_code == 403
    assert client.post(f"/api/interactions/{home['interaction']}/messages/", {"text": "hi"}).status_code == 403
    assert client.post("/esp", _fill(REQUESTS["esp.post"][2], home), format="json").status_code == 403
    assert Interaction.objects.get(pk=home["interaction"]).messages.count() == 0


@pytest.mark.django_db
def test_staff_without_permissions_cannot_redirect_a_channels_webhooks(home, away, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)
    before = _snapshot(away)

    response = client_of(staff).patch(
        "/api/channels/channel-away/", {"webhook_url": "https://attacker.example/", "secret": "mine"}, format="json"
    )

    assert response.status_code == 403
    assert _snapshot(away) == before


@pytest.mark.django_db
def test_an_agent_without_can_use_cannot_message_on_whatsapp(home):
    group = Group.objects.create(name="Reader")
    group.permissions.set(Group.objects.get(name="WhatsApp agent").permissions.exclude(codename="whatsapp_can_use"))
    user = member("reader", "Reader", tenants=[Tenant.objects.get(pk=home["tenant"])])

    response = client_of(user).post(f"/api/interactions/{home['interaction']}/messages/", {"text": "hi"})

    assert response.status_code == 403
    assert "whatsapp_can_use" in response.json()["detail"]


# --- admin extra views -------------------------------------------------------------------------------------------


ADMIN_EXTRA = {
    "admin:channels_app_campaign_sample": ("get", "/admin/channels_app/campaign/sample.csv"),
    "admin:channels_app_campaign_progress": ("get", "/admin/channels_app/campaign/{campaign}/progress.json"),
    "admin:channels_app_campaign_results": ("get", "/admin/channels_app/campaign/{campaign}/results.csv"),
    "admin:channels_app_campaign_transition": ("post", "/admin/channels_app/campaign/{campaign}/transition/cancel/"),
    "admin:channels_app_campaign_recipients": ("get",
                                               "/admin/channels_app/campaign/{campaign}/recipients/?outcome=sent"),
    "admin:channels_app_optionvalue_import": ("get", "/admin/channels_app/optionvalue/import/"),
    "admin:channels_app_optionvalue_export": ("get", "/admin/channels_app/optionvalue/export/?channel={channel}"),
    "admin:channels_app_standardresponse_preview": ("post", "/admin/channels_app/standardresponse/preview/"),
    "admin:channels_app_delivery_retry": ("post", "/admin/channels_app/delivery/{delivery}/retry/"),
    "admin:channels_app_whatsapptemplate_sync": ("post",
                                                 "/admin/channels_app/whatsapptemplate/sync/?channel={channel}"),
    "admin:channels_app_channel_rotate_secret": ("get", "/admin/channels_app/channel/{channel_pk}/rotate-secret/"),
    "admin:channels_app_channel_rotate_verify_token": (
        "get", "/admin/channels_app/channel/{channel_pk}/rotate-verify-token/"),
    "admin:channels_app_contact_erase": ("get", "/admin/channels_app/contact/{contact}/erase/"),
    "admin:channels_app_contact_export": ("get", "/admin/channels_app/contact/{contact}/export/"),
    "admin:channels_app_reports": ("get", "/admin/reports/"),
}


def test_every_admin_extra_view_is_requested_by_the_suite():
    registered = set()
    for namespace, pattern in _walk(get_resolver().url_patterns):
        if namespace == "admin:":
            registered.update(door_keys(namespace, pattern) or ())
    assert registered - set(ADMIN_EXTRA) == set()
    assert admin_site.is_registered(Campaign)


ADMIN_MATRIX = [(role, key) for role in ROLES for key in ADMIN_EXTRA]


@pytest.mark.slow  # hundreds of cases, each with two tenants' worlds: CI runs them, test-fast does not
@pytest.mark.django_db
@pytest.mark.parametrize(("role", "key"), ADMIN_MATRIX, ids=[f"{r or 'no-group'}:{k}" for r, k in ADMIN_MATRIX])
def test_admin_extra_views_hold_to_the_table(client, home, role, key):
    user = member("caller", *([role] if role else []), tenants=[Tenant.objects.get(pk=home["tenant"])])
    client.force_login(user)
    method, path = ADMIN_EXTRA[key]

    response = getattr(client, method)(_fill(path, home))

    if RIGHTS[key].allows(user):
        assert response.status_code != 403, response.status_code
    else:
        assert response.status_code == 403, response.status_code


@pytest.mark.django_db
@pytest.mark.parametrize("key", [k for k in ADMIN_EXTRA if "{campaign}" in ADMIN_EXTRA[k][1]])
def test_admin_extra_views_do_not_show_another_tenants_campaign(client, home, away, key):
    user = member("caller", *DEFAULT_GROUPS, tenants=[Tenant.objects.get(pk=home["tenant"])])
    client.force_login(user)
    method, path = ADMIN_EXTRA[key]

    response = getattr(client, method)(_fill(path, away))

    assert response.status_code == 404
    assert Campaign.objects.get(pk=away["campaign"]).state == "draft"


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["rotate-secret", "rotate-verify-token"])
def test_admin_rotation_does_not_reach_another_tenants_channel(client, home, away, what):
    user = member("caller", *DEFAULT_GROUPS, tenants=[Tenant.objects.get(pk=home["tenant"])])
    client.force_login(user)
    before = Channel.objects.get(pk=away["channel_pk"]).secret

    response = client.post(f"/admin/channels_app/channel/{away['channel_pk']}/{what}/", {"grace_hours": "0"})

    assert response.status_code == 404
    assert Channel.objects.get(pk=away["channel_pk"]).secret == before


@pytest.mark.django_db
def test_admin_pages_of_a_whatsapp_agent_hold_only_its_tenant(client, home, away):
    user = member("agent", "WhatsApp agent", tenants=[Tenant.objects.get(pk=home["tenant"])])
    client.force_login(user)

    changelist = client.get("/admin/channels_app/interaction/").content.decode()

    assert home["interaction"] in changelist and away["interaction"] not in changelist
    assert "channel-away" not in changelist  # not even as a filter choice
    assert client.get(f"/admin/channels_app/interaction/{away['interaction']}/change/").status_code == 302
    assert client.get(f"/admin/channels_app/interaction/{home['interaction']}/change/").status_code == 200
    assert client.get("/admin/channels_app/channel/").status_code == 200
    assert "channel-away" not in client.get("/admin/channels_app/channel/").content.decode()
    assert client.get("/admin/channels_app/campaign/").status_code == 403


@pytest.mark.django_db
def test_admin_actions_that_change_need_the_change_permission(client, home):
    from django.contrib.auth.models import Permission

    viewer = member("viewer", tenants=[Tenant.objects.get(pk=home["tenant"])])
    viewer.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_optionvalue", "view_interaction", "view_channel", "view_delivery"]))
    client.force_login(viewer)

    for page in ("optionvalue", "interaction", "channel", "delivery"):
        response = client.get(f"/admin/channels_app/{page}/")
        assert response.status_code == 200, page
        offered = [name for name, *_ in (response.context["action_form"].fields["action"].choices
                                          if response.context.get("action_form") else [])]
        assert [name for name in offered if name] == [], (page, offered)
