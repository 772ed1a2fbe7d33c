"""The options of the catalog (section `interaction-workspace`) the workspace's page reads, by name.

`workspace_options(user)` (views.py) renders each one's global value into the page as `DMS.options`
(`{"<name>": value}`), and the channels' own values as `DMS.optionsFor(channel_id)`. Every option named here
has `read_by=ReadBy.WORKSPACE` or `ReadBy.SERVER` in channels_app/options_catalog.py (tests check it).

SHELL_OPTIONS: read by workspace.js (the shell: offers, list, actions, desktop options of item 6).
WINDOW_OPTIONS: read by transcript.js, reply.js and contact.js (the interaction window, reply area, contact).
"""

SHELL_OPTIONS = [
    "whatsappsession.new-message-blinking",
    "whatsappsession.new-message-blinking-duration",
    "whatsappsession.focus-on-new-messages",
    "whatsappsession.pending-response-to-customer",
    "whatsappsession.on-hold-queue",
    "workbin.whatsappsession.in-progress",
    "interaction.window-title",
    "toast.window-title",
    "whatsappsession.outbound-session-config",
    "display-format.case-name-format",
    "display-format.customer-name-format",
]

# The options the server keeps with each session (services/options.py SESSION_OPTIONS: max-text-message-size,
# transcript-interactions-count, show-cross-channel-messages, message-delay-timespan, the free-message window's)
# are read from the interaction's own `session_options` first; these values serve an interaction without them.
WINDOW_OPTIONS = [
    # transcript.js
    "whatsappsession.message-delay-timespan",
    "whatsappsession.transcript-interactions-count",
    "whatsappsession.show-cross-channel-messages",
    # (locations: the server fills each one's mapUrl and previewUrl from the location-map options)
    # reply.js
    "whatsappsession.max-text-message-size",
    "whatsappsession.two-step-attachment-upload",
    "whatsappsession.enable-free-msg-timespan-monitoring",
    "whatsappsession.free-msg-timespan",
    "whatsappsession.default-notification-text",
    "whatsappsession.emojis-business-attribute",
    # contact.js
    "contact.displayed-attributes",
    "contact.directory-displayed-columns",
    "contact.directory-search-attributes",
]
