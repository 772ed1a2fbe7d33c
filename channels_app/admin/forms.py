"""The admin's base forms: every form an administrator submits keeps the text rules
(channels_app/text_rules.py). Django's form fields already refuse a NUL character in a text field, but
not in a JSON field, and a JSON field takes a lone surrogate from an escape ("\\ud800")."""

from django import forms
from django.utils.html import format_html, format_html_join

from channels_app.services.send_windows import DAYS, RECIPIENT, zone_names
from channels_app.text_rules import escaped, text_rule_broken_at, text_rule_message


class TextRulesJSONField(forms.JSONField):
    """Django's, except that a value sent back to the browser with its error shows a lone surrogate as an
    escape: written as it is, it could not be encoded and the page with the error was a 500."""

    def prepare_value(self, value):
        return escaped(super().prepare_value(value))


class TextRulesFormMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if type(field) is forms.JSONField:
                field.__class__ = TextRulesJSONField

    def clean(self):
        cleaned = super().clean()
        for name, value in list((cleaned or {}).items()):
            if isinstance(value, str | dict | list) and (found := text_rule_broken_at(value, name)):
                self.add_error(name, text_rule_message(*found))
        return cleaned


class TextRulesModelForm(TextRulesFormMixin, forms.ModelForm):
    """The default form of the admin's model pages."""


class TextRulesForm(TextRulesFormMixin, forms.Form):
    pass


class SendWindowWidget(forms.MultiWidget):
    """A campaign's send window as a person fills it in: from, to, the days, the zone."""

    def __init__(self, attrs=None):
        clock = {"placeholder": "HH:MM", "size": 5, "maxlength": 5, "inputmode": "numeric",
                 "pattern": "[0-2][0-9]:[0-5][0-9]"}
        super().__init__([
            forms.TextInput(attrs={**clock, "aria-label": "Send from (HH:MM)"}),
            forms.TextInput(attrs={**clock, "aria-label": "Send until (HH:MM)"}),
            forms.CheckboxSelectMultiple(choices=[(day, day.capitalize()) for day in DAYS]),
            forms.TextInput(attrs={"list": "send-window-zones", "size": 24, "aria-label": "Time zone"}),
        ], attrs)

    def decompress(self, value):
        if isinstance(value, dict) and value:
            return [value.get("from"), value.get("to"), value.get("days", list(DAYS)), value.get("timezone", RECIPIENT)]
        return [None, None, list(DAYS), RECIPIENT]

    def render(self, name, value, attrs=None, renderer=None):
        values = value if isinstance(value, list) else self.decompress(value)
        start, end, days, zone = (widget.render(f"{name}_{n}", values[n], {"id": f"id_{name}_{n}"}, renderer)
                                  for n, widget in enumerate(self.widgets))
        zones = format_html_join("", '<option value="{}">', ((z,) for z in [RECIPIENT, *zone_names()]))
        return format_html(
            '<div class="send-window">From {} to {}'
            '<fieldset class="send-window-days"><legend>On</legend>{}</fieldset>'
            'in the zone {}<datalist id="send-window-zones">{}</datalist></div>'
            "<style>.send-window-days {{ border: 0; padding: 0; margin: .4em 0; }}"
            " .send-window-days legend {{ float: left; padding: 0; margin-right: .8em; font-weight: normal; }}"
            " .send-window-days > div {{ display: flex; flex-wrap: wrap; gap: .2em 1.2em; }}"
            " .send-window-days > div > div {{ width: auto; }}</style>",
            start, end, days, zone, zones)


class SendWindowField(forms.MultiValueField):
    """The window as the API takes it ({"from", "to", "days", "timezone"}), or None when neither time is given;
    the API's rules (channels_app/send_windows.py) check it, in the form's clean_send_window."""

    widget = SendWindowWidget

    def __init__(self, **kwargs):
        kwargs.pop("encoder", None), kwargs.pop("decoder", None)  # the model's JSONField offers them
        super().__init__(fields=(forms.CharField(), forms.CharField(),
                                 forms.MultipleChoiceField(choices=[(day, day) for day in DAYS]), forms.CharField()),
                         require_all_fields=False, **kwargs)
        for field in self.fields:
            field.required = False

    def compress(self, data_list):
        if not data_list:
            return None
        start, end, days, zone = (list(data_list) + [None] * 4)[:4]
        if not start and not end:
            return None
        return {"from": start or "", "to": end or "", "days": list(days or []), "timezone": zone or RECIPIENT}
