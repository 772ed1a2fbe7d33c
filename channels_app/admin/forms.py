"""The admin's base forms: every form an administrator submits keeps the text rules
(channels_app/text_rules.py). Django's form fields already refuse a NUL character in a text field, but
not in a JSON field, and a JSON field takes a lone surrogate from an escape ("\\ud800")."""

from django import forms

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
