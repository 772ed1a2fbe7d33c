"""Business attributes and their values, and the ones the specification requires."""

from django.core.exceptions import ValidationError
from django.db import transaction

from channels_app.audit import audit_children, audit_muted
from channels_app.choices import BusinessAttributeType
from channels_app.errors import InvalidFields
from channels_app.models import BusinessAttribute, BusinessAttributeValue

# Emojis offered when whatsappsession.emojis-business-attribute names no
# attribute, or one without values (WhatsApp guide, "Emojis"). Each value's
# name is the emoji's Unicode code point(s), as in CustomEmojis.xml.
DEFAULT_EMOJIS = {
    "1f600": "😀", "1f642": "🙂", "1f609": "😉", "1f60d": "😍", "1f970": "🥰", "1f44d": "👍",
    "1f64f": "🙏", "1f44b": "👋", "1f389": "🎉", "2764": "❤", "2705": "✅", "1f4de": "📞",
}

# What the specification requires an administrator to create (WhatsApp guide:
# "Other configuration" and "Contact Attributes"), as
# (attribute name, display name, type, [(value name, display name, annex)]).
REQUIRED_BUSINESS_ATTRIBUTES = (
    (
        "Interaction Subtype", "Interaction Subtype", BusinessAttributeType.INTERACTION_SUBTYPE,
        [("InternalConferenceInvite", "Internal Conference Invite", {})],
    ),
    (
        "Contact Attributes", "Contact Attributes", BusinessAttributeType.CONTACT_ATTRIBUTES,
        [("_msg_ProfileNickname", "Profile Nickname",
          {"settings": {"is-searchable": "false", "is-sortable": "false"}})],
    ),
    (
        "Disposition Code", "Disposition Code", BusinessAttributeType.DISPOSITION_CODE,
        [("Resolved", "Resolved", {}), ("Not Resolved", "Not Resolved", {}), ("Follow Up", "Follow Up", {})],
    ),
    (
        "Emojis", "Emojis", BusinessAttributeType.EMOJIS,
        [(code, emoji, {}) for code, emoji in DEFAULT_EMOJIS.items()],
    ),
)


def business_attributes_ensure_required() -> None:
    """Create the required attributes and values that are missing (idempotent;
    values an administrator changed are left as they are)."""
    for name, display_name, attribute_type, values in REQUIRED_BUSINESS_ATTRIBUTES:
        attribute, _ = BusinessAttribute.objects.get_or_create(
            name=name, defaults={"display_name": display_name, "type": attribute_type}
        )
        for order, (value_name, value_display, annex) in enumerate(values):
            BusinessAttributeValue.objects.get_or_create(
                attribute=attribute,
                name=value_name,
                defaults={"display_name": value_display, "annex": annex, "order": order},
            )


@transaction.atomic
def business_attribute_save(*, attribute: BusinessAttribute, values: list[dict] | None = None) -> BusinessAttribute:
    """Validate and save an attribute; `values` (dicts of value fields) replaces
    its values when given. Errors are an InvalidFields keyed by field, with
    value errors as `values[i].field`."""
    errors: dict[str, list[str]] = {}
    try:
        attribute.full_clean()
    except ValidationError as error:
        errors.update(error.message_dict)
    new_values = []
    if values is not None:
        seen = set()
        for index, data in enumerate(values):
            value = BusinessAttributeValue(attribute=attribute, order=data.get("order", index), **{
                key: data[key] for key in ("name", "display_name", "description", "annex", "is_default") if key in data
            })
            try:
                value.full_clean(exclude=["attribute"], validate_unique=False, validate_constraints=False)
            except ValidationError as error:
                for field_name, messages in error.message_dict.items():
                    errors[f"values[{index}].{field_name}"] = messages
            if value.name in seen:
                errors[f"values[{index}].name"] = [f"The value {value.name!r} is listed twice."]
            seen.add(value.name)
            new_values.append(value)
    if errors:
        raise InvalidFields(errors)
    attribute.save()
    if values is not None:
        fields = ("name", "display_name", "description", "annex", "is_default", "order")
        before = list(attribute.values.order_by("order", "pk").values(*fields))
        with audit_muted(BusinessAttributeValue):  # recorded once, as the attribute's values
            attribute.values.all().delete()
            for value in new_values:
                value.attribute = attribute
            BusinessAttributeValue.objects.bulk_create(new_values)
        after = [{name: getattr(value, name) for name in fields} for value in sorted(new_values, key=lambda v: v.order)]
        audit_children(parent=attribute, name="values", before=before, after=after)
    return attribute


@transaction.atomic
def business_attribute_delete(*, attribute: BusinessAttribute) -> None:
    """Delete an attribute with its values (a required one comes back at the next migrate)."""
    attribute.delete()
