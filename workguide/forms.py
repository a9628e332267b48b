"""Small forms of the Work Guide pages (the screen flow forms come from ``flows.screens``)."""
from django import forms

from .services import SOURCES

SOURCE_LABELS = {"": "Everything", "me": "Assigned to me", "groups": "My groups", "queues": "My queues"}


class MyWorkFilterForm(forms.Form):
    """The filters of My Work; every field is optional and bad values are simply ignored."""

    q = forms.CharField(
        label="Search", required=False, max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Label or record", "autocomplete": "off"}),
    )
    source = forms.ChoiceField(
        label="Assigned", required=False, choices=[(key, SOURCE_LABELS[key]) for key in ("", *SOURCES)],
    )
    orchestration = forms.ChoiceField(label="Orchestration", required=False, choices=[("", "Any orchestration")])
    overdue = forms.BooleanField(label="Overdue only", required=False)

    def __init__(self, *args, orchestrations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["orchestration"].choices = [("", "Any orchestration"), *orchestrations]

    def filters(self):
        """The cleaned filters, with anything invalid dropped."""
        if self.is_valid():
            return self.cleaned_data
        return {name: value for name, value in getattr(self, "cleaned_data", {}).items() if name not in self.errors}


class CommentForm(forms.Form):
    text = forms.CharField(
        label="Add a comment", max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
    )


class ReassignForm(forms.Form):
    assignee = forms.RegexField(
        label="New assignee", max_length=160, regex=r"^(user|group|queue):.+$",
        help_text="user:NAME, group:NAME or queue:NAME",
        error_messages={"invalid": "Write user:NAME, group:NAME or queue:NAME."},
        widget=forms.TextInput(attrs={"list": "assignee-options", "autocomplete": "off"}),
    )
