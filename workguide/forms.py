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
    tab = forms.ChoiceField(required=False, choices=[("", "Open"), ("completed", "Completed by me")],
                            widget=forms.HiddenInput)
    sort = forms.ChoiceField(label="Sort by", required=False, choices=[
        ("", "Newest first"), ("oldest", "Oldest first"), ("due", "Due date"), ("priority", "Priority")])
    record = forms.CharField(label="Record", required=False, max_length=200)
    data_field = forms.RegexField(
        label="Data field", required=False, max_length=100, regex=r"^(?!.*__)[A-Za-z_][A-Za-z0-9_]*$",
        error_messages={"invalid": "A field name: letters, digits and single _, not starting with a digit."},
        help_text="A field of the item's inputs, e.g. amount")
    data_value = forms.CharField(label="contains", required=False, max_length=200)

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


class LaunchForm(forms.Form):
    """The inputs an orchestration declares, as the launch button's small form.

    Field names are ``input-NAME``. ``inputs()`` gives the values to pass to
    ``orchestration.launch``, which checks them against the declarations
    (types, required) and names any bad one.
    """

    PREFIX = "input-"

    def __init__(self, *args, declared=(), **kwargs):
        super().__init__(*args, **kwargs)
        from flows.screens import DateInput, DateTimeLocalInput

        self.declared = list(declared or [])
        for var in self.declared:
            name, kind = var.get("name"), var.get("type") or "text"
            label = var.get("label") or name.replace("_", " ").capitalize()
            required = bool(var.get("required")) and var.get("default") is None
            common = {"label": label, "required": required, "initial": var.get("default"),
                      "help_text": var.get("help_text") or ""}
            if kind == "number":
                field = forms.FloatField(**common)
            elif kind == "boolean":
                field = forms.BooleanField(**{**common, "required": False})
            elif kind == "date":
                field = forms.DateField(widget=DateInput(), **common)
            elif kind == "datetime":
                field = forms.DateTimeField(widget=DateTimeLocalInput(), **common)
            elif kind in ("list", "record"):
                common["help_text"] = common["help_text"] or ("A JSON list, e.g. [\"a\", \"b\"]" if kind == "list"
                                                              else 'A JSON object, e.g. {"model": "app.model", "pk": 1}')
                field = forms.JSONField(widget=forms.Textarea(attrs={"rows": 2}), **common)
            else:
                field = forms.CharField(max_length=10_000, **common)
            self.fields[self.PREFIX + name] = field

    def inputs(self):
        """Declared name → cleaned value (JSON-ready), leaving out what was left empty (defaults apply)."""
        values = {}
        for var in self.declared:
            value = self.cleaned_data.get(self.PREFIX + var["name"])
            if value in (None, ""):
                continue
            if hasattr(value, "isoformat"):
                value = value.isoformat()
            values[var["name"]] = value
        return values


class DelegationForm(forms.Form):
    """My Work: while I am away, my new work goes to a substitute."""

    substitute = forms.CharField(max_length=150, help_text="Their username.")
    starts = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                 input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])
    ends = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                               input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])

    def clean_substitute(self):
        from django.contrib.auth import get_user_model

        model = get_user_model()
        name = self.cleaned_data["substitute"].strip()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
        if user is None:
            raise forms.ValidationError(f"No user {name!r}.")
        return user


class BulkForm(forms.Form):
    """The items ticked on My Work (or the team view) and what to do with each."""

    action = forms.ChoiceField(choices=[("claim", "Claim"), ("release", "Release"), ("reassign", "Reassign to")])
    assignee = forms.CharField(max_length=300, required=False, label="Assignee",
                               help_text='For reassign: "user:NAME", "group:NAME" or "queue:NAME".')
    items = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=True,
                                           error_messages={"required": "Tick at least one item."})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["items"].valid_value = lambda value: str(value).isdigit() and len(str(value)) <= 18

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "reassign" and not (cleaned.get("assignee") or "").strip():
            self.add_error("assignee", 'Say who gets them: "user:NAME", "group:NAME" or "queue:NAME".')
        if len(cleaned.get("items") or []) > 100:
            self.add_error("items", "At most 100 items at once.")
        return cleaned
