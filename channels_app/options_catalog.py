"""The catalog of every configuration option the specification names.

Pure data and validation, no database: each option has its section, type,
default, valid values, when a change takes effect, and the specification's
description. Values are stored as text (as in a Genesys `.cfg` file); the
`validate_option_value` function turns a submitted text into its stored form
or refuses it with the valid values in the message.

Sections:
  `interaction-workspace`  agent-desktop options of the WhatsApp plugin and
                           the Workspace settings the guide recommends;
  `chat-server`            Chat Server options the WhatsApp guide requires;
  `dms`                    Digital Messaging Server application options;
  `channel`                options of a DMS `[channel-*]` section.
Every option can be set globally and overridden per channel.
"""

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum


class OptionType(StrEnum):
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"
    CHOICE = "choice"
    JSON_OBJECT = "json_object"
    QUEUE_KEY = "queue_key"
    URL_TEMPLATE = "url_template"
    INTEGER_PAIR = "integer_pair"


class TakesEffect(StrEnum):
    IMMEDIATELY = "Immediately"
    NEXT_INTERACTION = "At the next interaction"
    NEXT_CONFERENCE_REQUEST = (
        "At the next attempt to request a conference with an Agent Group or with an agent of a particular Skill"
    )
    NEXT_SESSION = "When the next chat session is created"
    AFTER_RESTART = "After the worker is restarted"


class ReadBy(StrEnum):
    """Who reads an option: this server (it changes what the server does), this server's agents' page
    (`/workspace/`, channels_app/workspace/options.py names them), the agent desktop (Genesys Workspace;
    kept and exported here so that one place holds the configuration), or another component of the
    platform (Chat Server, routing)."""

    SERVER = "server"
    WORKSPACE = "workspace"
    DESKTOP = "desktop"
    PLATFORM = "platform"


class InvalidOptionValue(ValueError):
    """A value outside the option's valid values; the message names them."""


QUEUE_KEY_PATTERN = re.compile(r"^(?P<tenant>\d+):(?P<name>[^\s:,]+)$")
BOOLEAN_TRUE = {"true", "1", "yes", "on"}
BOOLEAN_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class OptionDefinition:
    section: str
    name: str
    type: OptionType
    default: str
    description: str
    takes_effect: TakesEffect = TakesEffect.NEXT_INTERACTION
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = field(default=())
    valid_values_text: str = ""
    read_by: ReadBy = ReadBy.DESKTOP

    @property
    def key(self) -> tuple[str, str]:
        return (self.section, self.name)

    @property
    def valid_values(self) -> str:
        """The valid values as the specification writes them."""
        if self.valid_values_text:
            return self.valid_values_text
        match self.type:
            case OptionType.INTEGER:
                return f"Any integer from {self.minimum} to {self.maximum}"
            case OptionType.BOOLEAN:
                return "true, false"
            case OptionType.CHOICE:
                return ", ".join(self.choices)
            case OptionType.JSON_OBJECT:
                return "A valid JSON object string, or empty"
            case OptionType.QUEUE_KEY:
                return "A chat queue key tenant-id:endpoint-name, for example 1:default"
            case OptionType.URL_TEMPLATE:
                return "An http(s) URL template, or empty"
            case OptionType.INTEGER_PAIR:
                return "Two positive integers separated by a comma, for example 30,50"
            case _:
                return "Any string"

    def parse(self, stored: str):
        """The typed value of a stored (already valid) text."""
        match self.type:
            case OptionType.INTEGER:
                return int(stored)
            case OptionType.BOOLEAN:
                return stored == "true"
            case OptionType.JSON_OBJECT:
                return json.loads(stored) if stored else None
            case OptionType.INTEGER_PAIR:
                return tuple(int(part) for part in stored.split(",")) if stored else None
            case _:
                return stored


def validate_option_value(definition: OptionDefinition, raw) -> str:
    """Return the stored text of `raw` for this option, or raise InvalidOptionValue."""
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif raw is None:
        text = ""
    else:
        text = str(raw).strip()

    def refuse(reason: str):
        raise InvalidOptionValue(
            f"{reason} for option {definition.name!r} (section {definition.section!r}). "
            f"Valid values: {definition.valid_values}."
        )

    match definition.type:
        case OptionType.INTEGER:
            if not re.fullmatch(r"[+-]?\d+", text):
                refuse(f"{text!r} is not an integer")
            number = int(text)
            if definition.minimum is not None and number < definition.minimum:
                refuse(f"{number} is below the minimum {definition.minimum}")
            if definition.maximum is not None and number > definition.maximum:
                refuse(f"{number} is above the maximum {definition.maximum}")
            return str(number)
        case OptionType.BOOLEAN:
            lowered = text.lower()
            if lowered in BOOLEAN_TRUE:
                return "true"
            if lowered in BOOLEAN_FALSE:
                return "false"
            refuse(f"{text!r} is not a boolean")
        case OptionType.CHOICE:
            if text not in definition.choices:
                refuse(f"{text!r} is not one of the valid values")
            return text
        case OptionType.JSON_OBJECT:
            if not text:
                return ""
            try:
                parsed = json.loads(text)
            except ValueError as error:
                refuse(f"invalid JSON ({error.args[0] if error.args else error})")
            if not isinstance(parsed, dict):
                refuse("the JSON value is not an object")
            return text
        case OptionType.QUEUE_KEY:
            if not text:
                return ""
            if not QUEUE_KEY_PATTERN.match(text):
                refuse(f"{text!r} is not a chat queue key")
            return text
        case OptionType.URL_TEMPLATE:
            if text and not re.match(r"^https?://[^\s]+$", text, re.IGNORECASE):
                refuse(f"{text!r} is not an http(s) URL")
            return text
        case OptionType.INTEGER_PAIR:
            if not text:
                return ""
            if not re.fullmatch(r"\d+\s*,\s*\d+", text):
                refuse(f"{text!r} is not two integers separated by a comma")
            first, second = (int(part) for part in text.split(","))
            if not 0 < first < second:
                refuse(f"{text!r}: the first interval must be positive and shorter than the second")
            return f"{first},{second}"
        case _:
            if "\n" in text or "\r" in text:
                refuse("the value spans several lines")
            return text


IW = "interaction-workspace"
CHAT_SERVER = "chat-server"
DMS = "dms"
CHANNEL = "channel"

OPTIONS: tuple[OptionDefinition, ...] = (
    # --- interaction-workspace: WhatsApp plugin ---------------------------------
    OptionDefinition(
        IW, "intercommunication.whatsappsession.queue", OptionType.STRING, "",
        "Specifies the name of the Interaction Queue that is used by the routing-based feature for WhatsApp. "
        "The following attached data is added: IW_RoutingBasedOriginalEmployeeId, IW_RoutingBasedTargetId, "
        "IW_RoutingBasedTargetType, and IW_RoutingBasedRequestType.",
        takes_effect=TakesEffect.NEXT_CONFERENCE_REQUEST,
        valid_values_text="The name of a valid Interaction Queue script object",
        read_by=ReadBy.SERVER,  # a conference request by group goes to this queue (services/routing.py)
    ),
    OptionDefinition(
        IW, "whatsappsession.max-text-message-size", OptionType.INTEGER, "4096",
        "Specifies the maximum size of the message in bytes (the message string encoded in UTF-8).",
        minimum=1, maximum=2147483647,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.transcript-interactions-count", OptionType.INTEGER, "1",
        "Specifies the number of previous chat sessions that are shown when the agent clicks "
        "\"See older messages...\".",
        minimum=1, maximum=1000,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.enable-free-msg-timespan-monitoring", OptionType.BOOLEAN, "false",
        "Enables the automatic notifications feature: after whatsappsession.free-msg-timespan from the "
        "customer's last message, agents can only send Notifications, and a regular message is sent inside "
        "the default notification template.",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.free-msg-timespan", OptionType.INTEGER, "1440",
        "The timeout, in minutes from the customer's last message, after which agents can only send "
        "Notifications (WhatsApp's 24-hour rule is 1440 minutes).",
        minimum=1, maximum=1440,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.default-notification-text", OptionType.STRING, "",
        "The default notification text sent to the brand's user when an agent sends a message after the "
        "configured timeout; {{1}} stands for the agent's text, for example "
        "\"Thank you for your patience! {{1}}\". Must match the WhatsApp template.",
        valid_values_text="The text of an approved WhatsApp template, with the parameter {{1}}",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.default-notification-id", OptionType.STRING, "",
        "The notification (template) ID for the default notification text. Must match the WhatsApp template.",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.default-notification-language", OptionType.STRING, "",
        "The language of the default notification text, for example en. Must match the WhatsApp template.",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.location-map.browse.query", OptionType.URL_TEMPLATE, "",
        "The URL for navigating to the map provider website; {LATITUDE} and {LONGITUDE} are replaced by "
        "the position of the inbound location message.",
        takes_effect=TakesEffect.IMMEDIATELY,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.location-map.preview.query", OptionType.URL_TEMPLATE, "",
        "The request to the configured map provider for a location preview (static map); the markers "
        "{LATITUDE}, {LONGITUDE}, {HEIGHT} and {WIDTH}. The preview is rendered only when this is not empty.",
        takes_effect=TakesEffect.IMMEDIATELY,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.location-map.preview.height", OptionType.INTEGER, "200",
        "The height of the location preview, in pixels.",
        takes_effect=TakesEffect.IMMEDIATELY, minimum=1, maximum=2048,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.location-map.preview.width", OptionType.INTEGER, "300",
        "The width of the location preview, in pixels.",
        takes_effect=TakesEffect.IMMEDIATELY, minimum=1, maximum=2048,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.outbound-session-config", OptionType.JSON_OBJECT, "",
        "JSON object string containing a list of channels to be used for outbound sessions in other media "
        "interactions, used when _umsOutboundSessionConfig is missing from the attached data. Sample: "
        "{\"channels\": [{\"server-name\": \"DigitalMessagingServer\", \"channel-name\": \"channel-whatsapp-1\", "
        "\"business-id\": \"19251112221\"}]}",
        takes_effect=TakesEffect.IMMEDIATELY,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.emojis-business-attribute", OptionType.STRING, "",
        "The name of the business attribute whose values are the emojis agents may insert. With no emojis "
        "configured or no attribute named, a default set of emojis is offered.",
        valid_values_text="The name of a business attribute, or empty for the default set",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.two-step-attachment-upload", OptionType.BOOLEAN, "false",
        "When true, an attached file can be previewed before it is sent; when false, the attachment is sent "
        "immediately after the file is selected.",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "whatsappsession.show-cross-channel-messages", OptionType.BOOLEAN, "false",
        "When true, the transcript shows messages from multiple WhatsApp channels.",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.message-delay-timespan", OptionType.INTEGER, "60",
        "The delay, in seconds, after which a message counts as delayed: its origination time is shown in "
        "bold and its arrival time as a tooltip.",
        minimum=0, maximum=86400,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        IW, "whatsappsession.new-message-blinking", OptionType.BOOLEAN, "true",
        "Enables or disables the incoming message blinking feature.",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "whatsappsession.new-message-blinking-duration", OptionType.INTEGER, "3",
        "The duration of blinking for a new message, in seconds, when blinking is enabled.",
        minimum=1, maximum=60,
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "whatsappsession.focus-on-new-messages", OptionType.BOOLEAN, "true",
        "Whether the chat transcript scrolls down automatically whenever there is a new message.",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "whatsappsession.pending-response-to-customer", OptionType.INTEGER_PAIR, "30,50",
        "The two intervals, in seconds, of the pending response indicator: it turns from green to yellow "
        "after the first and to flashing red after the second.",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "whatsappsession.on-hold-queue", OptionType.STRING, "",
        "The queue where interactions are placed on hold (async-chat-return-queue in the sample business "
        "process).",
        valid_values_text="The name of a valid Interaction Queue script object",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "workbin.whatsappsession.in-progress", OptionType.STRING, "",
        "The workbin for WhatsApp interactions in progress (async-chat-main-workbin in the sample business "
        "process).",
        valid_values_text="The name of a valid workbin",
        read_by=ReadBy.WORKSPACE,
    ),
    # --- interaction-workspace: Workspace settings the guide recommends ----------
    OptionDefinition(
        IW, "contact.directory-displayed-columns", OptionType.STRING,
        "LastName,FirstName,PhoneNumber,EmailAddress,_msg_ProfileNickname",
        "The contact attributes shown as columns of the contact directory.",
        valid_values_text="A comma-separated list of contact attribute names",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "contact.directory-search-attributes", OptionType.STRING,
        "LastName,FirstName,PhoneNumber,EmailAddress,_msg_ProfileNickname",
        "The contact attributes used to search the contact directory.",
        valid_values_text="A comma-separated list of contact attribute names",
        read_by=ReadBy.SERVER,  # GET /api/contacts/?directory= searches these (the workspace's directory)
    ),
    OptionDefinition(
        IW, "contact.displayed-attributes", OptionType.STRING,
        "Title,FirstName,LastName,PhoneNumber,EmailAddress,_msg_ProfileNickname",
        "The contact attributes displayed for a contact.",
        valid_values_text="A comma-separated list of contact attribute names",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "display-format.case-name-format", OptionType.STRING,
        "$Contact._msg_ProfileNickname$|$Contact.FirstName$ $Contact.LastName$|$Interaction.MainParty$",
        "How the case name is displayed: alternatives separated by |, the first with a value wins.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="A display format of field codes",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "display-format.customer-name-format", OptionType.STRING,
        "$Contact._msg_ProfileNickname$|$Contact.FirstName$ $Contact.LastName$|$Party.DisplayName$",
        "How the customer name is displayed: alternatives separated by |, the first with a value wins.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="A display format of field codes",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "interaction.window-title", OptionType.STRING,
        "($Contact.FirstName$ $Contact.LastName$ $Interaction._msg_ProfileNickname$|$Interaction.MainParty$) "
        "$Interaction.Type$ $Window.Title$",
        "The title of the interaction window.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="A display format of field codes",
        read_by=ReadBy.WORKSPACE,
    ),
    OptionDefinition(
        IW, "toast.window-title", OptionType.STRING,
        "($Contact._msg_ProfileNickname$|$Contact.FirstName$ $Contact.LastName$|$Interaction.MainParty$) "
        "$Window.Title$",
        "The title of the interaction notice (toast) window.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="A display format of field codes",
        read_by=ReadBy.WORKSPACE,
    ),
    # --- chat-server ----------------------------------------------------------
    OptionDefinition(
        CHAT_SERVER, "transcript-auto-save", OptionType.CHOICE, "1",
        "Automatically saves the chat transcript in UCS in case of a solution failure: 0 never, 1 when the "
        "transcript changes, 2 on every message. The WhatsApp guide requires 1.",
        choices=("0", "1", "2"),
        read_by=ReadBy.PLATFORM,
    ),
    OptionDefinition(
        CHAT_SERVER, "xml-request-max-size", OptionType.INTEGER, "100000",
        "The maximum size, in bytes, of a request (including ESP requests). 100 KB or more is required for "
        "rich messaging; larger requests are refused.",
        takes_effect=TakesEffect.IMMEDIATELY, minimum=1000, maximum=104857600,
        read_by=ReadBy.SERVER,
    ),
    # --- dms ------------------------------------------------------------------
    OptionDefinition(
        DMS, "session-shutdown-timeout", OptionType.INTEGER, "1800",
        "The time, in seconds, after which an idle chat session is ended. The WhatsApp guide recommends "
        "increasing it to 1800 (30 minutes).",
        takes_effect=TakesEffect.NEXT_SESSION, minimum=60, maximum=604800,
        read_by=ReadBy.SERVER,
    ),
    # --- channel (a DMS [channel-*] section) ------------------------------------
    OptionDefinition(
        CHANNEL, "inbound-route-by-call", OptionType.QUEUE_KEY, "",
        "The chat queue key <tenant-id>:<Chat Server endpoint name> where interactions of the channel are "
        "placed, and where InviteToChat places outbound interactions when the request has no ChatQueueKey.",
        takes_effect=TakesEffect.NEXT_SESSION,
        read_by=ReadBy.SERVER,
    ),
)

OPTIONS = OPTIONS + (
    # --- channel: the built-in hub simulator (transport `simulator`) -------------
    OptionDefinition(
        CHANNEL, "simulator-send-receipts", OptionType.BOOLEAN, "true",
        "For a simulator channel: answer every sent message with a Delivered receipt, as a hub would.",
        takes_effect=TakesEffect.IMMEDIATELY,
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        CHANNEL, "simulator-auto-reply", OptionType.STRING,
        "Thanks! This is an automatic reply from the hub simulator.",
        "For a simulator channel: the text of an automatic customer reply to every sent message; empty: none.",
        takes_effect=TakesEffect.IMMEDIATELY,
        read_by=ReadBy.SERVER,
    ),
    # --- dms: contact identification ------------------------------------------
    OptionDefinition(
        DMS, "contact-identification-attribute", OptionType.STRING, "PhoneNumber",
        "The user data attribute of an ESP request that identifies the contact (Contact Identification); "
        "when the request has none, _umsClientId does.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="The name of a user data attribute",
        read_by=ReadBy.SERVER,
    ),
)

OPTIONS = OPTIONS + (
    # --- dms: opt-out (every channel type; API.md "Opt-out") ---------------------
    OptionDefinition(
        DMS, "opt-out-keywords", OptionType.STRING, "STOP, UNSUBSCRIBE, CANCEL, END, QUIT, ARRET",
        "Comma-separated words: a customer message that is exactly one of them (case-insensitive, trimmed) opts "
        "the contact out of the channel; InviteToChat and campaigns then do not send to them there.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="Words separated by commas",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        DMS, "opt-in-keywords", OptionType.STRING, "START, UNSTOP",
        "Comma-separated words: a customer message that is exactly one of them opts the contact back in.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="Words separated by commas",
        read_by=ReadBy.SERVER,
    ),
    OptionDefinition(
        DMS, "opt-out-confirmation", OptionType.STRING,
        "You will receive no more messages from us here. Reply START to receive them again.",
        "The text sent to a customer who has just opted out with a stop keyword; empty: none.",
        takes_effect=TakesEffect.IMMEDIATELY, valid_values_text="Any text",
        read_by=ReadBy.SERVER,
    ),
)

OPTIONS_BY_KEY: dict[tuple[str, str], OptionDefinition] = {option.key: option for option in OPTIONS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(option.section for option in OPTIONS))


def get_option(section: str, name: str) -> OptionDefinition | None:
    return OPTIONS_BY_KEY.get((section, name))


def find_option_by_name(name: str) -> OptionDefinition | None:
    """Option names are unique across sections; a `.cfg` section may be named differently."""
    for option in OPTIONS:
        if option.name == name:
            return option
    return None
