"""The options of the catalog (section `interaction-workspace`) the workspace's page reads, by name.

`workspace_options(user)` (views.py) renders each one's global value into the page as `DMS.options`
(`{"<name>": value}`), and the channels' own values as `DMS.optionsFor(channel_id)`. Every option named here
has `read_by=ReadBy.WORKSPACE` or `ReadBy.SERVER` in channels_app/options_catalog.py (tests check it).

SHELL_OPTIONS: read by workspace.js (the shell: offers, list, actions, desktop options of item 6).
# The options the server keeps with each session (services/options.py SESSION_OPTIONS: max-text-message-size,
# transcript-interactions-count, show-cross-channel-messages, message-delay-timespan, the free-message window's)
# are read from the interaction's own `session_options` first; these values serve an interaction without them.
WINDOW_OPTIONS = [
    # transcript.js
    "whatsappsession.message-delay-timespan",
    "whatsappsession.transcript-interactions-count",
    "whatsappsession.show-cross-channel-messages",
    "whatsappsession.location-map.browse.query",
    "whatsappsession.location-map.preview.query",
    "whatsappsession.location-map.preview.height",
    "whatsappsession.location-map.preview.width",
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
