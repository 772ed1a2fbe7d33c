"""The catalog options the workspace page reads (API.md, "The workspace"), by the module that reads them.

`workspace_options(user)` (views.py) renders the values of SHELL_OPTIONS + WINDOW_OPTIONS into the page as
`DMS.options`, keyed by option name. The options the server keeps with each session (services/options.py,
SESSION_OPTIONS: `max-text-message-size`, `transcript-interactions-count`, `show-cross-channel-messages`,
`message-delay-timespan`) are read by the window from the interaction's own `session_options` first, and from
here only for an interaction that has none.
"""

# The shell (workspace.js): sign-in, offers, the list, the actions bar and the desktop options of item 6.
SHELL_OPTIONS: list[str] = []

# The interaction window (transcript.js), the reply area (reply.js) and the contact panel (contact.js).
WINDOW_OPTIONS: list[str] = [
    # transcript.js
    "whatsappsession.message-delay-timespan",
    "whatsappsession.transcript-interactions-count",
    "whatsappsession.show-cross-channel-messages",
    "whatsappsession.location-map.browse.query",
    "whatsappsession.location-map.preview.query",
    "whatsappsession.location-map.preview.height",
    "whatsappsession.location-map.preview.width",
    "display-format.customer-name-format",
    # reply.js
    "whatsappsession.max-text-message-size",
    "whatsappsession.two-step-attachment-upload",
    "whatsappsession.enable-free-msg-timespan-monitoring",
    "whatsappsession.default-notification-text",
    # contact.js
    "contact.displayed-attributes",
    "contact.directory-displayed-columns",
    "contact.directory-search-attributes",
    "display-format.case-name-format",
]
