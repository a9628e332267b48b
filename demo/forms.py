from django import forms
from django.contrib.auth import get_user_model

from .models import Employee, Opportunity


class _UserChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class EmployeeForm(forms.ModelForm):
    manager = _UserChoice(queryset=get_user_model().objects.filter(is_active=True).order_by("username"), required=False)

    class Meta:
        model = Employee
        fields = [
            "first_name", "last_name", "email", "department", "title", "start_date",
            "status", "manager", "needs_laptop", "remote",
        ]
        widgets = {"start_date": forms.DateInput(attrs={"type": "date"})}
        help_texts = {
            "status": 'A new employee created as "Hired" starts the onboarding orchestration.',
            "remote": "Remote employees get their equipment shipped; others get a desk.",
        }


class OpportunityForm(forms.ModelForm):
    owner = _UserChoice(queryset=get_user_model().objects.filter(is_active=True).order_by("username"), required=False)

    class Meta:
        model = Opportunity
        fields = ["name", "account", "amount", "discount_percent", "stage", "owner", "approval_notes"]
        widgets = {"approval_notes": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"stage": 'Changing the stage to "Approval requested" starts the deal approval.'}


class OpportunityStageForm(forms.ModelForm):
    """The quick edit on an opportunity's page: its stage and discount."""

    class Meta:
        model = Opportunity
        fields = ["stage", "discount_percent"]
        help_texts = {"stage": 'Set "Approval requested" to send the deal to a sales manager.'}
