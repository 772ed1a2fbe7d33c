"""ESP methods: ChatService.InviteToChat and Messaging.ValidateContact."""

from channels_app.errors import InvalidParameter
from channels_app.esp.dispatcher import EspContext, esp_method
from channels_app.services.contacts import contact_validate_phone
from channels_app.services.invitations import channel_resolve, invite_to_chat, parse_flag

KVLISTS = ("Contact", "Agent")


def _text(parameters: dict, name: str, *, required: bool = False) -> str:
    value = parameters.get(name)
    if value is None or value == "":
        if required:
            raise InvalidParameter(f"{name} incorrect: the parameter is mandatory.", field=name)
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidParameter(f"{name} incorrect: must be a string.", field=name)
    return str(value).strip()


def _kvlist(parameters: dict, name: str, *, allow_list: bool = False):
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, dict) or (allow_list and isinstance(value, list)):
        return value
    raise InvalidParameter(f"{name} incorrect: must be a KVList (JSON object).", field=name)


@esp_method("ChatService", "InviteToChat")
def handle_invite_to_chat(parameters: dict, user_data: dict, context: EspContext) -> dict:
    channel = channel_resolve(_text(parameters, "_umsChannel"), user=context.user)
    invitation = invite_to_chat(
        channel=channel,
        client_id=_text(parameters, "_umsClientId", required=True),
        business_id=_text(parameters, "_umsBusinessId") or None,
        standard_response_id=_text(parameters, "StandardResponseId") or None,
        chat_queue_key=_text(parameters, "ChatQueueKey") or None,
        terminate_session=parse_flag(parameters.get("TerminateSessionFlag", "false"), "TerminateSessionFlag"),
        contact_fields=_kvlist(parameters, "Contact"),
        agent_fields=_kvlist(parameters, "Agent"),
        custom_properties=_kvlist(parameters, "CustomProperties", allow_list=True),
        user_data=user_data,
        trace_id=context.trace_id,
    )
    return {"_umsChatSessionId": invitation.interaction.pk}


@esp_method("Messaging", "ValidateContact")
def handle_validate_contact(parameters: dict, user_data: dict, context: EspContext) -> dict:
    channel = channel_resolve(_text(parameters, "_umsChannel"), user=context.user)
    return {"Id": contact_validate_phone(channel=channel, raw_id=_text(parameters, "Id", required=True))}
