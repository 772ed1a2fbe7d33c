"""The one table of rights: which action needs which permission.

Read by the API's permission class, the ESP view, the admin's extra views
and the agent actions; `tests/test_authorization.py` walks it against every
registered URL and every default group, so a new door without a rule fails
the suite. Permissions are Django permissions held through groups (API.md,
"Who may do what"); which rows a caller sees is the tenants' business
(`channels_app.selectors`), not this table's.

Keys:
* API: `<basename>.<action>` for viewsets, `<rights_name>.<method>` for the
  other views (`rights_name` is set on the view);
* ESP, /nexus and /healthz: `<name>.<method>`;
* admin views beyond a model's standard pages: `admin:<url name>`;
* agent actions decided by the content (the channel's media, a file):
  `agent.<what>`.
"""

from dataclasses import dataclass

APP = "channels_app"


@dataclass(frozen=True)
class Rule:
    """Who may: anyone (`authenticated=False`; the view checks its own
    credentials, a password or a signature), or an authenticated, active user
    holding every permission of `permissions`."""

    permissions: tuple[str, ...] = ()
    authenticated: bool = True

    def allows(self, user) -> bool:
        if not self.authenticated:
            return True
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return all(user.has_perm(permission) for permission in self.permissions)

    def missing(self, user) -> list[str]:
        """The permissions `user` lacks (all of them when signed out)."""
        if user is None or not user.is_authenticated:
            return list(self.permissions)
        return [permission for permission in self.permissions if not user.has_perm(permission)]


PUBLIC = Rule(authenticated=False)
SIGNED_IN = Rule()


def needs(*codenames: str) -> Rule:
    """A rule needing every permission named (`app.codename`; bare codenames are this app's)."""
    return Rule(tuple(name if "." in name else f"{APP}.{name}" for name in codenames))


def crud(basename: str, model: str, *, app: str = APP, read_also: tuple[str, ...] = ()) -> dict[str, Rule]:
    """DRF `DjangoModelPermissions` semantics, with reads needing `view_` too
    (contacts, interactions and deliveries hold personal data)."""
    view = needs(f"{app}.view_{model}", *read_also)
    return {
        f"{basename}.list": view,
        f"{basename}.retrieve": view,
        f"{basename}.create": needs(f"{app}.add_{model}"),
        f"{basename}.update": needs(f"{app}.change_{model}"),
        f"{basename}.partial_update": needs(f"{app}.change_{model}"),
        f"{basename}.destroy": needs(f"{app}.delete_{model}"),
    }


CAMPAIGN_ACTIONS = ("start", "pause", "resume", "cancel")

RIGHTS: dict[str, Rule] = {
    # --- Operating and the protocols with their own credentials -----------------------------------
    "home.get": PUBLIC,  # a redirect to the admin
    "healthz.get": PUBLIC,
    "metrics.get": PUBLIC,  # open to METRICS_ALLOWED_NETWORKS only (the view checks the address)
    "media-file.get": needs("view_attachment"),  # and the file is an attachment of the caller's tenants
    "media-link.get": PUBLIC,  # a signed, expiring link: the signature is the credential
    "nexus-messages.post": PUBLIC,  # signed with the channel's secret
    "whatsapp-webhook.get": PUBLIC,  # Meta's verification: the channel's verify token
    "whatsapp-webhook.post": PUBLIC,  # signed with the channel's app secret
    "esp.post": needs("use_esp"),
    "api-root.get": SIGNED_IN,
    "schema.get": PUBLIC,  # the OpenAPI document describes the contract, not its data
    "api-docs.get": PUBLIC,
    # --- Signing in (channels_app/sign_in): the provider's answer, the pending sign-in's code are the credentials
    "sign-in-oidc.get": PUBLIC,
    "sign-in-oidc-callback.get": PUBLIC,  # the ID token, checked
    "sign-in-code.get": PUBLIC,  # GET and POST: the code of the user whose password was right
    "sign-in-enrol.get": PUBLIC,  # GET and POST: the first code of the pending user's new authenticator
    # --- Tokens --------------------------------------------------------------------------------
    "auth-token.post": PUBLIC,  # username and password
    "auth-token.delete": SIGNED_IN,  # revokes the caller's own token
    # --- Configuration -------------------------------------------------------------------------
    **crud("tenant", "tenant"),
    **crud("channel", "channel"),
    "channel.rotate_secret": needs("change_channel"),
    "channel.rotate_verify_token": needs("change_channel"),
    "channel.sync_templates": needs("view_channel", "change_standardresponse"),
    "option.list": needs("view_optionvalue"),
    "option.retrieve": needs("view_optionvalue"),
    "option.partial_update": needs("change_optionvalue"),
    "option.destroy": needs("change_optionvalue"),
    **crud("business-attribute", "businessattribute"),
    **crud("standard-response", "standardresponse"),
    "standard-response.render": needs("view_standardresponse"),
    "standard-response.submit": needs("change_standardresponse", "view_channel"),
    **crud("standard-response-category", "standardresponsecategory"),
    **{key: rule for key, rule in crud("attachment", "attachment").items() if "update" not in key},
    "emojis.get": needs("view_standardresponse"),
    # --- Access --------------------------------------------------------------------------------
    **{key: rule for key, rule in crud("user", "user", app="auth").items() if not key.endswith(".update")},
    "audit-log.list": needs("view_auditentry"),
    "audit-log.retrieve": needs("view_auditentry"),
    # --- Conversations (personal data) ---------------------------------------------------------
    "interaction.list": needs("view_interaction"),
    "interaction.retrieve": needs("view_interaction", "view_message"),
    "interaction.messages": needs("view_interaction", "add_message"),
    # Done with a disposition changes the interaction; the agents' groups hold change_interaction.
    "interaction.end": needs("view_interaction", "change_interaction"),
    "interaction.history": needs("view_interaction", "view_message"),
    # A new session is an agent message on a new interaction; its channel's media adds agent.whatsapp,
    # another media than the interaction's agent.new_session_from_other_media (checked in the view).
    "interaction.sessions": needs("view_interaction", "add_interaction", "add_message"),
    "contact.list": needs("view_contact"),
    "contact.retrieve": needs("view_contact"),
    # Its details (the workspace's contact panel); its opt-outs add agent.change_opt_outs (checked in the view).
    "contact.partial_update": needs("change_contact"),
    # --- Routing to agents (API.md, third part) ------------------------------------------------------
    **crud("queue", "queue"),
    "agent-me.get": needs("use_workspace"),
    "agent-me.patch": needs("use_workspace"),
    "agent-offers.get": needs("use_workspace"),
    "agent-events.get": needs("use_workspace"),  # the event stream (api/events.py checks it itself)
    "offer.accept": needs("use_workspace"),  # and the offer is the caller's (404 otherwise)
    "offer.reject": needs("use_workspace"),
    "interaction-transfer.post": needs("use_workspace", "view_interaction"),
    "interaction-conference.post": needs("use_workspace", "view_interaction"),
    "interaction-notes.get": needs("view_interaction"),
    "interaction-notes.post": needs("view_interaction", "change_interaction"),  # the agents' groups hold both
    # What the workspace's page reads (api/workspace.py), open to any API client with the same rights.
    "agents.get": needs("use_workspace"),  # the agents of the caller's tenants: whom to transfer to, invite
    "agent-interactions.get": needs("use_workspace", "view_interaction"),  # the caller's own conversations
    "interaction-session-channels.get": needs("view_interaction"),  # where POST .../sessions/ may go
    "workspace.get": needs("use_workspace"),  # the agents' page (channels_app/workspace); 403 page otherwise
    "contact-erase.post": needs("erase_contact"),  # the right to erasure (API.md "Data lifecycle")
    "contact-export.get": needs("view_contact"),  # the right of access
    # --- Campaigns ---------------------------------------------------------------------------
    **{key: rule for key, rule in crud("campaign", "campaign").items() if "update" not in key},
    "campaign.recipients": needs("view_campaign"),
    "campaign.add_recipients": needs("change_campaign"),
    "campaign.results_csv": needs("view_campaign"),
    **{f"campaign.{action}": needs("change_campaign") for action in CAMPAIGN_ACTIONS},
    "report-campaign.get": needs("view_reports"),  # the campaign report (API.md "Reports"), of the caller's tenants
    # --- Reports (API.md, third part): figures of the caller's tenants ---------------------------------------
    "report-conversations.get": needs("view_reports"),
    "report-deliveries.get": needs("view_reports"),
    # --- Segments (API.md, "Audiences, send windows and variants") -----------------------------------------
    **crud("segment", "segment"),
    # The count, and a sample with the fields a campaign's recipients carry (what view_campaign shows of them).
    "segment.preview": needs("view_segment"),
    # --- Agent actions that depend on what is sent (the spec's WhatsApp role permissions) --------
    "agent.whatsapp": needs("whatsapp_can_use"),
    "agent.send_files": needs("whatsapp_can_send_files"),
    "agent.change_attachments_in_notification": needs("whatsapp_can_change_attachments_in_notification"),
    "agent.change_attachments_in_reply_button": needs("whatsapp_can_change_attachments_in_reply_button"),
    "agent.new_session_from_other_media": needs("whatsapp_can_create_new_session_from_other_media"),
    # A contact's opt-outs (API.md "Opt-out"): the administrators', not the agents' who edit its details.
    "agent.change_opt_outs": needs("change_contact", "change_contactoptout"),
    # --- Admin pages beyond the standard ones (those check the model's own permissions) ----------
    "admin:channels_app_campaign_progress": needs("view_campaign"),
    "admin:channels_app_campaign_sample": needs("view_campaign"),
    "admin:channels_app_campaign_results": needs("view_campaign"),
    "admin:channels_app_campaign_transition": needs("change_campaign"),
    "admin:channels_app_campaign_recipients": needs("view_campaign"),  # the report's drill-down, as the API's
    "admin:channels_app_optionvalue_import": needs("change_optionvalue", "add_optionvalue"),
    "admin:channels_app_optionvalue_export": needs("view_optionvalue"),
    "admin:channels_app_standardresponse_preview": needs("view_standardresponse"),
    "admin:channels_app_channel_rotate_secret": needs("change_channel"),
    "admin:channels_app_channel_rotate_verify_token": needs("change_channel"),
    "admin:channels_app_delivery_retry": needs("change_delivery"),
    "admin:channels_app_contact_erase": needs("view_contact", "erase_contact"),  # as the API's, and the page
    "admin:channels_app_contact_export": needs("view_contact"),
    "admin:channels_app_whatsapptemplate_sync": needs("view_channel", "change_standardresponse"),  # as the API's
    "admin:channels_app_reports": needs("view_reports"),  # the Reports page (admin/reports.py)
}

# Replacing the file of a standard response's header, by the response's content type (WhatsApp guide,
# "Sending attachments": "change attachments in Notifications", "... in Reply Button").
HEADER_ATTACHMENT_RIGHTS = {
    "notification": "agent.change_attachments_in_notification",
    "rich_media": "agent.change_attachments_in_notification",
    "reply_buttons": "agent.change_attachments_in_reply_button",
}

# DRF answers OPTIONS with the view's description: any signed-in user may ask.
METADATA = SIGNED_IN


def rule(key: str) -> Rule | None:
    return RIGHTS.get(key)


def rule_for_view(view, method: str) -> Rule | None:
    """The rule of a DRF view for a request: by its `rights_name` (or router
    basename) and its action, or its HTTP method for a plain APIView."""
    name = getattr(view, "rights_name", None) or getattr(view, "basename", None)
    if name is None:
        return None
    action = getattr(view, "action", None)
    if action == "metadata" or method == "OPTIONS":
        return METADATA
    if action is None:
        action = "get" if method == "HEAD" else method.lower()
    return RIGHTS.get(f"{name}.{action}")
