"""Template tags of the Work Guide.

``{% load workguide %}``

``{% work_guide record %}``
    The Work Guide component for a record page: the stage path of every
    running orchestration on ``record`` and the caller's open work items for
    it, each with its screen flow completable in place (htmx). Renders
    nothing for a user who neither may see runs nor has an item on the
    record; a user with items but without ``orchestration.view_runs`` sees
    only the runs their items belong to.

``{% launch_button "api_name" record [label="..."] %}``
    A CSRF-protected POST form that starts the autolaunched orchestration
    ``api_name`` on ``record`` (shown only to staff and holders of
    ``orchestration.launch_orchestration``; the view checks again). The
    result comes back as a message on the same page.
"""
from django import template
from django.template.loader import render_to_string

register = template.Library()


def _request(context):
    request = context.get("request")
    if request is None or not getattr(request, "user", None) or not request.user.is_authenticated:
        return None
    return request


@register.simple_tag(takes_context=True)
def work_guide(context, record):
    from orchestration.records import model_label

    from ..views import component_context

    from ..services import may_see_record_runs

    request = _request(context)
    if request is None or record is None or getattr(record, "pk", None) is None:
        return ""
    label = model_label(record)
    if not may_see_record_runs(request.user, label, record.pk):
        return ""  # nothing, not even "no orchestration is running": that too would tell
    return render_to_string(
        "workguide/component.html", component_context(request, label, record.pk), request=request
    )


@register.simple_tag(takes_context=True)
def launch_button(context, api_name, record=None, label=None):
    from orchestration.models import Orchestration
    from orchestration.records import model_label

    from ..views import may_launch

    request = _request(context)
    if request is None or not may_launch(request.user):
        return ""
    if label is None:
        orch = Orchestration.objects.filter(api_name=api_name, status="active").only("label", "api_name").first()
        if orch is None:
            return ""
        label = f"Start {orch.label or orch.api_name}"
    return render_to_string("workguide/launch_button.html", {
        "allowed": True,
        "api_name": api_name,
        "label": label,
        "record_model": model_label(record) if record is not None else "",
        "record_pk": record.pk if record is not None else "",
        "next": request.get_full_path(),
    }, request=request)
