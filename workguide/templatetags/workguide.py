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
    A button that opens a small CSRF-protected POST form to start the
    autolaunched orchestration ``api_name`` on ``record``, with a field for
    each input the orchestration declares (shown only to staff and holders
    of ``orchestration.launch_orchestration``; the view checks again). Each
    rendered form carries a one-time token: sending it twice (a double
    click) starts one run. When a run of ``api_name`` is already running on
    the record the form says so, and starting another needs a tick. The
    result comes back as a message on the same page.
"""
from django import template
from django.template.loader import render_to_string

from orchestration.permissions import can_view_runs

register = template.Library()


def _request(context):
    request = context.get("request")
    if request is None or not getattr(request, "user", None) or not request.user.is_authenticated:
        return None
    return request


@register.simple_tag(takes_context=True)
def work_guide(context, record):
    from orchestration.records import model_label

    from ..views import visible_component_context

    request = _request(context)
    if request is None or record is None or getattr(record, "pk", None) is None:
        return ""
    found = visible_component_context(request, model_label(record), record.pk)
    if found is None:
        return ""  # nothing, not even "no orchestration is running": that too would tell
    return render_to_string("workguide/component.html", found, request=request)


@register.simple_tag(takes_context=True)
def launch_button(context, api_name, record=None, label=None):
    from orchestration.models import Orchestration
    from orchestration.records import model_label

    from ..views import may_launch

    import secrets

    from ..forms import LaunchForm
    from ..views import TOKEN_LENGTH, running_runs

    request = _request(context)
    if request is None or not may_launch(request.user):
        return ""
    orch = Orchestration.objects.filter(api_name=api_name, status="active").only("label", "api_name", "inputs").first()
    if orch is None:
        return ""
    if label is None:
        label = f"Start {orch.label or orch.api_name}"
    record_model = model_label(record) if record is not None else ""
    record_pk = record.pk if record is not None else ""
    form = LaunchForm(declared=orch.inputs, auto_id=f"launch-{api_name}-%s")
    return render_to_string("workguide/launch_button.html", {
        "allowed": True,
        "api_name": api_name,
        "name": orch.label or orch.api_name,
        "label": label,
        "form": form,
        "token": secrets.token_hex(TOKEN_LENGTH // 2),
        "running": list(running_runs(api_name, record_model, record_pk)[:3]),
        "record_model": record_model,
        "record_pk": record_pk,
        "next": request.get_full_path(),
    }, request=request)


@register.filter
def may_view_runs(user):
    """Whether ``user`` may open the monitor: the nav asks the permission module, no setting needed."""
    return can_view_runs(user)
