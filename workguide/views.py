"""The Work Guide pages: My Work, the item page, the screen flow panel and the record component.

Every view needs a login. Items are looked up through ``services.visible_items``
so that anyone who is neither an assignee nor a holder of
``workguide.manage_workitem`` gets a 404 from the page, its htmx partials and
its actions alike. Forms post with Django's CSRF token; htmx requests send it
in the ``X-CSRFToken`` header (``hx-headers`` on ``<body>``).

The screen flow panel is the part htmx swaps: Next / Back / Finish post to
``workguide:flow`` and get the panel back, with inline errors when a screen
does not validate. The state of a half-finished flow is stored on the work
item after every move (``services.save_progress``), so leaving and coming
back resumes on the same screen with the same values.
"""
import logging
import re
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.db.models.fields.json import KeyTextTransform
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, reswap, retarget, trigger_client_event

from flows.compiled import FlowSpec
from flows.runtime import FlowError
from flows.screens import ACTIONS, ScreenFlowState
from orchestration import permissions
from orchestration.conf import baton_settings

from . import services
from .forms import BulkForm, CommentForm, DelegationForm, MyWorkFilterForm, ReassignForm
from .models import Queue, WorkItem
from .services import ClaimedByOther, WorkItemClosed

log = logging.getLogger(__name__)

PAGE_SIZE = 25
CHANGED_EVENT = "workguide-changed"
# For host pages: fired (HX-Trigger) when a step is finished in the Work Guide, on the page or in the
# record component; it bubbles to <body>. Its detail names the item, run, step and record.
STEP_COMPLETED_EVENT = "baton:step-completed"
ITEM_RELATED = (
    "run__orchestration", "flow", "step_run", "assignee_user", "assignee_group", "assignee_queue", "claimed_by",
    "completed_by", "delegated_from",
)


# ---------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------

def get_item(request, pk):
    """The work item ``pk`` if the caller may see it, else 404 (never 403: no hint that it exists)."""
    return get_object_or_404(services.visible_items(request.user).select_related(*ITEM_RELATED), pk=pk)


def _ctx_of(request):
    """Where a panel lives: on the item page or inside a record's Work Guide component."""
    value = request.POST.get("ctx") or request.GET.get("ctx")
    return "component" if value == "component" else "page"


# ---------------------------------------------------------------------------
# My Work
# ---------------------------------------------------------------------------

SORTS = {
    "": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "due": (F("due_at").asc(nulls_last=True), "-created_at", "-id"),
    "priority": ("-priority", F("due_at").asc(nulls_last=True), "-created_at", "-id"),
}
NOT_KEPT = ("page", "known")  # the pager's and the live refresh's own parameters


def _my_work(request):
    items = services.my_open_items(request.user)
    orchestrations = list(
        items.order_by().values_list("run__orchestration__api_name", "run__orchestration__label").distinct()
    )
    choices = sorted({api: (label or api) for api, label in orchestrations}.items(), key=lambda pair: pair[1].lower())
    form = MyWorkFilterForm(request.GET or None, orchestrations=choices)
    filters = form.filters() if request.GET else {}
    counts = services.source_counts(items)
    completed_tab = filters.get("tab") == "completed"
    if completed_tab:  # what the caller finished, newest first; the sources and overdue do not apply
        shown = WorkItem.objects.filter(status="completed", completed_by=request.user).order_by("-completed_at", "-id")
    else:
        shown = items.order_by(*SORTS[filters.get("sort") or ""])
        if filters.get("source"):
            shown = shown.filter(source=filters["source"])
        if filters.get("overdue"):
            shown = shown.filter(due_at__lt=timezone.now())
    if filters.get("orchestration"):
        shown = shown.filter(run__orchestration__api_name=filters["orchestration"])
    query = (filters.get("q") or "").strip()
    if query:
        shown = shown.filter(Q(label__icontains=query) | Q(record_label__icontains=query))
    record = (filters.get("record") or "").strip()
    if record:
        shown = shown.filter(record_label__icontains=record)
    if filters.get("data_field"):  # process data: a field of the item's inputs (a checked name, never a lookup)
        shown = shown.alias(process_value=KeyTextTransform(filters["data_field"], "inputs"))
        value = (filters.get("data_value") or "").strip()
        shown = (shown.filter(process_value__icontains=value) if value
                 else shown.filter(inputs__has_key=filters["data_field"]))
    shown = shown.select_related("run__orchestration", "assignee_user", "assignee_group", "assignee_queue", "claimed_by",
                                 "delegated_from")
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {k: v for k, v in request.GET.items() if k not in NOT_KEPT and v not in ("", None)}
    return {
        **_delegation_context(request.user),
        "bulk_form": BulkForm(),
        "may_manage": services.can_manage(request.user),
        "completed_tab": completed_tab,
        "sort_label": dict(form.fields["sort"].choices).get(filters.get("sort") or "", "Newest first"),
        "poll_seconds": baton_settings.BATON_WORKGUIDE_POLL_SECONDS,
        "page_number": page.number,
        "form": form,
        "counts": counts,
        "page": page,
        "items": list(page.object_list),
        "filtered": bool(set(kept) - {"tab", "sort"}),
        "query_string": urlencode(kept),
        "now": timezone.now(),
    }


@login_required
@require_GET
def my_work(request):
    return render(request, "workguide/my_work.html", _my_work(request))


def _delegation_context(user, form=None):
    """The caller's delegations (current and coming) and the form to set one: one query."""
    mine = list(services.delegations_for(user).filter(user=user, ends__gt=timezone.now()).order_by("starts"))
    return {"delegations": mine, "delegation_form": form or DelegationForm(), "now": timezone.now()}


@login_required
@require_POST
def delegate(request):
    """Set the caller's delegation from My Work (another user's is the API's, for managers)."""
    form = DelegationForm(request.POST)
    if form.is_valid():
        try:
            services.set_delegation(request.user, form.cleaned_data["substitute"], form.cleaned_data["starts"],
                                    form.cleaned_data["ends"])
            messages.success(request, f"Until {form.cleaned_data['ends']:%Y-%m-%d %H:%M}, new work for you goes to "
                                      f"{form.cleaned_data['substitute'].get_username()}.")
            return redirect("workguide:my_work")
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
    context = _my_work(request) | _delegation_context(request.user, form)
    return render(request, "workguide/my_work.html", context, status=400)


@login_required
@require_POST
def end_delegation(request, pk):
    delegation = get_object_or_404(services.delegations_for(request.user), pk=pk)
    if not services.may_delete_delegation(delegation, request.user):
        raise Http404("no such delegation")
    delegation.delete()
    messages.success(request, "Your delegation is ended: new work comes to you again.")
    return redirect("workguide:my_work")


def _row_label(item):
    return f"{item.label} — {item.record_label}" if item.record_label else item.label


BULK_ACTIONS = {"claim": "Claimed", "release": "Released", "reassign": "Reassigned"}


@login_required
@require_POST
def bulk(request):
    """Claim, release or reassign the ticked items, each on its own: a result line per item."""
    form = BulkForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("workguide:my_work")
    action = form.cleaned_data["action"]
    ids = form.cleaned_data["items"]
    found = {item.pk: item for item in services.visible_items(request.user).select_related(*ITEM_RELATED)
             .filter(pk__in=ids)}
    results = []
    for pk in ids:
        item = found.get(pk)
        if item is None:
            results.append({"pk": pk, "label": f"Item {pk}", "ok": False, "text": "not found"})
            continue
        try:
            if action == "claim":
                services.claim(item, request.user)
            elif action == "release":
                if item.claimed_by_id is None:
                    raise PermissionDenied("it is not claimed")
                services.unclaim(item, request.user)
            else:
                services.reassign(item, request.user, form.cleaned_data["assignee"])
            results.append({"pk": pk, "label": _row_label(item), "ok": True, "text": BULK_ACTIONS[action].lower()})
        except ValidationError as exc:
            results.append({"pk": pk, "label": _row_label(item), "ok": False, "text": " ".join(_messages_of(exc))})
        except (ClaimedByOther, WorkItemClosed, PermissionDenied) as exc:
            results.append({"pk": pk, "label": _row_label(item), "ok": False, "text": str(exc) or "not allowed"})
    if request.POST.get("from") == "team" and services.can_manage(request.user):
        return render(request, "workguide/team.html", _team(request) | {"bulk_results": results, "bulk_action": action})
    context = _my_work(request) | {"bulk_results": results, "bulk_action": action}
    return render(request, "workguide/my_work.html", context)


@login_required
@require_GET
def team(request):
    """Managers: the open items of every group and queue, who holds what, what is overdue."""
    if not services.can_manage(request.user):
        raise PermissionDenied("the team view needs workguide.manage_workitem")
    return render(request, "workguide/team.html", _team(request))


def _team(request):
    from django.db.models import Count, F, Q

    now = timezone.now()
    items = (WorkItem.objects.filter(status="open").exclude(assignee_type=WorkItem.USER)
             .select_related("run__orchestration", "assignee_group", "assignee_queue", "claimed_by", "delegated_from")
             .order_by(F("due_at").asc(nulls_last=True), "-created_at", "-id"))
    team_name = request.GET.get("team", "")
    kind, _, name = team_name.partition(":")
    if kind == "group":
        items = items.filter(assignee_group__name=name)
    elif kind == "queue":
        items = items.filter(assignee_queue__name=name)
    overdue = Q(due_at__lt=now)
    teams = [
        {"key": f"group:{row['assignee_group__name']}", "open": row["open"], "overdue": row["overdue"],
         "unclaimed": row["unclaimed"]}
        for row in WorkItem.objects.filter(status="open", assignee_type=WorkItem.GROUP).values("assignee_group__name")
        .annotate(open=Count("id"), overdue=Count("id", filter=overdue),
                  unclaimed=Count("id", filter=Q(claimed_by__isnull=True))).order_by("assignee_group__name")
    ] + [
        {"key": f"queue:{row['assignee_queue__name']}", "open": row["open"], "overdue": row["overdue"],
         "unclaimed": row["unclaimed"]}
        for row in WorkItem.objects.filter(status="open", assignee_type=WorkItem.QUEUE).values("assignee_queue__name")
        .annotate(open=Count("id"), overdue=Count("id", filter=overdue),
                  unclaimed=Count("id", filter=Q(claimed_by__isnull=True))).order_by("assignee_queue__name")
    ]
    holders = list(items.order_by().filter(claimed_by__isnull=False).values("claimed_by__username")
                   .annotate(held=Count("id"), overdue=Count("id", filter=overdue)).order_by("-held"))
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    return {"teams": teams, "team": team_name, "holders": holders, "page": page, "items": list(page.object_list),
            "now": now, "bulk_form": BulkForm(), "bulk_from": "team"}


@login_required
@require_GET
def saved_filters(request):
    """The caller's saved filters, loaded by the page after it shows (htmx): My Work itself stays within its
    query budget."""
    from .models import SavedFilter

    saved = list(SavedFilter.objects.filter(user=request.user).values("pk", "name", "query"))
    return render(request, "workguide/_saved_filters.html", {"saved_filters": saved})


FILTER_NAMES = ("tab", "q", "source", "orchestration", "overdue", "record", "data_field", "data_value", "sort")


@login_required
@require_POST
def save_filter(request):
    """Keep My Work's filters under a name for the caller (the same name again replaces them); back to the list.

    The filters come as the filter form's own fields (htmx includes them) or,
    without JavaScript, as the page's query string (``query``); only My
    Work's filter names are kept.
    """
    from django.http import QueryDict

    from .models import SavedFilter

    source = request.POST if any(request.POST.get(k) for k in FILTER_NAMES) else QueryDict(request.POST.get("query", ""))
    kept = {k: source.get(k)[:200] for k in FILTER_NAMES if source.get(k)}
    name = " ".join(request.POST.get("name", "").split())[:60]
    url = reverse("workguide:my_work") + (f"?{urlencode(kept)}" if kept else "")
    if not name:
        messages.error(request, "Give the filters a name to save them under.")
    elif not kept:
        messages.error(request, "Nothing to save: choose some filters or a sort first.")
    else:
        SavedFilter.objects.update_or_create(user=request.user, name=name, defaults={"query": urlencode(kept)})
        messages.success(request, f"Saved these filters as “{name}”.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@require_POST
def delete_filter(request, pk):
    from .models import SavedFilter

    saved = get_object_or_404(SavedFilter, pk=pk, user=request.user)  # another user's: 404
    saved.delete()
    messages.success(request, f"Deleted the saved filters “{saved.name}”.")
    return redirect("workguide:my_work")


@login_required
@require_GET
def my_work_results(request):
    """The results only (the list, its pager, the counts out of band), for htmx; pushes the page's own URL.

    The live refresh polls this with ``known`` = the version it shows: while
    ``services.open_items_version`` still gives that (one query), the answer
    is 204 and htmx leaves the list as it is.
    """
    known = request.GET.get("known")
    if known and known == services.open_items_version(request.user):
        return HttpResponse(status=204)
    context = _my_work(request)
    response = render(request, "workguide/_results.html", {**context, "oob_counts": bool(request.htmx)})
    if request.htmx and not known:
        url = reverse("workguide:my_work")
        query = context["query_string"]
        page_number = request.GET.get("page")
        if page_number and page_number != "1":
            query = f"{query}&page={page_number}" if query else f"page={page_number}"
        push_url(response, f"{url}?{query}" if query else url)
    return response


# ---------------------------------------------------------------------------
# The screen flow panel
# ---------------------------------------------------------------------------

def _state(item):
    return ScreenFlowState(FlowSpec.load(item.flow_id), item.inputs, item.progress)


def panel_context(request, item, *, form=None, state=None, notice="", done=False, ctx="page", next_items=None):
    """What ``workguide/_panel.html`` needs for ``item`` as ``request.user`` sees it now."""
    user = request.user
    data = {
        "item": item, "ctx": ctx, "done": done, "notice": notice, "form": None, "state": None,
        "blocked": "", "problem": "", "next_items": next_items or [],
        "run_paused": item.is_open and services.item_run_is_paused(item),
        "claimable": item.is_open and item.assignee_type != WorkItem.USER and item.claimed_by_id is None
        and services.can_claim(item, user),
    }
    if done:
        return data
    if not item.is_open:
        data["blocked"] = services._closed_message(item)
        if item.status == "completed" and item.completed_by_id == user.pk:
            data["blocked"] = f"You completed “{item.label}”."
        data["submitted"] = services.submitted_values(item)
        return data
    if services.excluded(item, user):
        data["blocked"] = (f"You may not do “{item.label}”: separation of duties — this step excludes you "
                           f"(for instance because you made the request). Someone else will finish it.")
        return data
    if not services.can_work(item, user):
        who = item.claimed_by.get_username() if item.claimed_by_id else "someone else"
        data["blocked"] = (f"“{item.label}” is claimed by {who}. Only {who} can work on it now; "
                           f"it comes back to everyone if they release it.")
        if services.can_release(item, user):
            data["blocked"] += " As a manager you may release it first (recorded in the run's timeline)."
        return data
    try:
        state = state or _state(item)
    except FlowError as exc:
        log.warning("work item %s: cannot show its flow: %s", item.pk, exc)
        data["problem"] = f"This item's flow cannot be shown: {exc}"
        return data
    form = form or state.form()
    form.auto_id = f"wi{item.pk}-%s"
    _quiet_display_labels(form)
    data.update(form=form, state=state, live_names=_live_names(state.current_screen))
    return data


def _live_names(screen):
    """The screen's input fields that a ``visible_if`` or display text on it reads: changing one redraws the screen.

    A plain name match over the expressions' text; naming one field too many costs a redraw, never a wrong one.
    """
    texts = [f.visible_if for f in screen.fields if f.visible_if]
    texts += [f.text for f in screen.fields if f.type == "display" and "{!" in (f.text or "")]
    if not texts:
        return set()
    joined = "\n".join(texts)
    return {f.name for f in screen.input_fields() if re.search(rf"(?<![\w.]){re.escape(f.name)}(?!\w)", joined)}


def _quiet_display_labels(form):
    """Display text needs no label unless the definition gave one (the spec fills in one from the name)."""
    from flows.screens import DisplayField

    for name, form_field in form.fields.items():
        if isinstance(form_field, DisplayField) and form_field.label == name.replace("_", " ").capitalize():
            form_field.label = ""
            form[name].label = ""  # the bound field may already exist (a validated form)


def _render_panel(request, item, status=200, **kwargs):
    return render(request, "workguide/_panel.html", {"panel": panel_context(request, item, **kwargs)}, status=status)


@login_required
def flow_panel(request, pk):
    """GET: the panel as it stands (resumes the stored progress). POST: Next, Back or Finish."""
    item = get_item(request, pk)
    ctx = _ctx_of(request)
    if request.method == "GET":
        return _render_panel(request, item, ctx=ctx)
    if request.method != "POST":
        return HttpResponseBadRequest("GET or POST only")
    finished, panel, status = _flow_move(request, item)
    if finished:
        if not request.htmx:  # the page without JavaScript: back to My Work with a message
            messages.success(request, f"“{item.label}” is done.")
            return redirect("workguide:my_work")
        return _finished_response(request, item, ctx)
    if not request.htmx:
        return _item_page(request, pk, panel=panel, status=status)
    response = _render_panel(request, item, status=status, ctx=ctx, **panel)
    if not item.is_open:  # someone else finished it meanwhile: let the stage path catch up too
        trigger_client_event(response, CHANGED_EVENT, {"item": item.pk})
    return response


@login_required
@require_POST
def flow_preview(request, pk):
    """The panel redrawn from what is typed on the current screen, as a field changes (htmx).

    ``visible_if`` and display text are evaluated again by the server, over
    the values as typed (never in the browser), without validating: no
    errors for fields not filled in yet. What was typed is kept as the
    screen's draft, so leaving or reloading the page shows it again. Nothing
    is claimed: only moving on (Next, Finish) claims a group or queue item.
    """
    item = get_item(request, pk)
    ctx = _ctx_of(request)

    def whole_panel():  # the item changed meanwhile (finished, claimed, canceled): the panel explains
        response = _render_panel(request, item, ctx=ctx)
        retarget(response, f"#panel-{item.pk}-{ctx}")
        reswap(response, "outerHTML")
        return response

    if not item.is_open or not services.can_work(item, request.user):
        return whole_panel()
    try:
        state = _state(item)
    except FlowError:
        return whole_panel()
    if state.finished:
        return whole_panel()
    form = state.preview(request.POST)
    state.drafts[state.current_screen.name] = form.initial_draft
    services.save_progress(item, state.progress)
    panel = panel_context(request, item, form=form, state=state, ctx=ctx)
    return render(request, "workguide/_live_fields.html", {"panel": panel, "item": item, "form": panel["form"]})


@login_required
@require_POST
def flow_draft(request, pk):
    """Keep what is typed on the current screen as its draft, as the fields change (htmx, no swap): 204.

    The form names its screen (``screen``, its index); a draft for another
    screen than the one the person stands on (a request still on its way
    after Next or Back) is dropped, as is one for an item that is no longer
    theirs to work. Nothing is validated and nothing is claimed.
    """
    item = get_item(request, pk)
    if item.is_open and services.can_work(item, request.user):
        try:
            state = _state(item)
        except FlowError:
            state = None
        if state is not None and not state.finished and request.POST.get("screen") == str(state.index):
            state.drafts[state.current_screen.name] = state.preview(request.POST).initial_draft
            services.save_progress(item, state.progress)
    return HttpResponse(status=204)


def _flow_move(request, item):
    """Carry out Next / Back / Finish. ``(finished, panel keyword arguments, HTTP status)``."""
    user = request.user
    action = request.POST.get("action", "next")
    if action not in ACTIONS:
        return False, {"notice": f"Unknown action {action!r}."}, 400
    if not item.is_open or not services.can_work(item, user):
        return False, {}, 200
    try:
        state = _state(item)
    except FlowError:
        return False, {}, 200
    result = state.submit(request.POST, action)
    if not result.finished:
        if result.ok and action != "back":
            try:
                _claim_on_start(item, user)
            except (ClaimedByOther, WorkItemClosed):
                item.refresh_from_db()
                return False, {}, 200  # htmx swaps only 2xx: the panel explains
        if result.ok:
            services.save_progress(item, state.progress)
        return False, {"form": result.form, "state": state}, 200
    if not result.ok:  # Finish found errors (possibly on an earlier screen): show that screen
        state.finished = False
        services.save_progress(item, state.progress)
        return False, {"form": result.form, "state": state}, 200
    try:
        services.complete_work_item(item, user, state.values)
    except ValidationError as exc:
        state.finished = False
        form = state.form(_bound_data(state))
        form.is_valid()
        for message in _messages_of(exc):
            form.add_error(None, message)
        return False, {"form": form, "state": state}, 200
    except (WorkItemClosed, ClaimedByOther, PermissionDenied) as exc:
        item.refresh_from_db()
        return False, {"notice": str(exc)}, 200
    log.info("work item %s completed by %s", item.pk, user.get_username())
    return True, {}, 200


def _bound_data(state):
    from flows.screens import _as_data

    return _as_data(state.current_screen, state.values)


def _messages_of(exc):
    if hasattr(exc, "message_dict"):
        return [f"{'' if k == NON_FIELD_ERRORS else k + ': '}{m}" for k, ms in exc.message_dict.items() for m in ms]
    return list(exc.messages)


def _claim_on_start(item, user):
    """A group or queue item is claimed by whoever starts filling it in, so two people never do it twice."""
    if item.assignee_type == WorkItem.USER or item.claimed_by_id == user.pk:
        return
    if item.claimed_by_id is None and services.can_claim(item, user):
        services.claim(item, user)


def _finished_response(request, item, ctx):
    item.refresh_from_db()
    if ctx == "component":
        context = component_context(request, item.record_model, item.record_pk,
                                    notice=f"“{item.label}” is done.")
        response = render(request, "workguide/component.html", context)
        retarget(response, f"#{context['dom_id']}")
        reswap(response, "outerHTML")
    else:
        next_items = list(
            services.my_open_items(request.user).filter(run_id=item.run_id).exclude(pk=item.pk)[:5]
        )
        response = _render_panel(request, item, ctx=ctx, done=True, next_items=next_items)
    trigger_client_event(response, CHANGED_EVENT, {"item": item.pk})
    trigger_client_event(response, STEP_COMPLETED_EVENT, {
        "item": item.pk, "run": item.run_id, "step": item.step_run.step_name,
        "record": {"model": item.record_model, "pk": item.record_pk} if item.record_model else None,
    })
    return response


# ---------------------------------------------------------------------------
# The item page
# ---------------------------------------------------------------------------

@login_required
@require_GET
def item_page(request, pk):
    return _item_page(request, pk)


def _item_page(request, pk, panel=None, status=200):
    item = get_item(request, pk)
    record, facts = services.record_summary(item.record_model, item.record_pk)
    can_manage = services.can_manage(request.user)
    context = {
        "item": item,
        "record": record,
        "record_url": _record_url(record),
        "facts": facts,
        "path": services.stage_path(item.run),
        "cancel_note": services.cancel_note(item.run_id) if item.run.status == "canceled" else None,
        "panel": panel_context(request, item, ctx="page", **(panel or {})),
        "comments": list(services.comments(item)),
        "comment_form": CommentForm(),
        "can_manage": can_manage,
        "is_assignee": services.is_assignee(item, request.user) and not services.excluded(item, request.user),
        "can_release": item.is_open and services.can_release(item, request.user),
        "hands_on": not can_manage and services.holds(item, request.user),
        "reassign_form": ReassignForm() if item.is_open and services.can_reassign(item, request.user) else None,
        "assignee_options": _assignee_options() if can_manage and item.is_open else [],
    }
    return render(request, "workguide/item.html", context, status=status)


def _record_url(record):
    if record is None or not hasattr(record, "get_absolute_url"):
        return ""
    try:
        return record.get_absolute_url()
    except Exception:
        return ""


def _assignee_options(limit=200):
    user_model = get_user_model()
    names = [f"user:{n}" for n in user_model._default_manager.filter(is_active=True)
             .order_by(user_model.USERNAME_FIELD).values_list(user_model.USERNAME_FIELD, flat=True)[:limit]]
    names += [f"group:{n}" for n in Group.objects.order_by("name").values_list("name", flat=True)[:limit]]
    names += [f"queue:{n}" for n in Queue.objects.order_by("name").values_list("name", flat=True)[:limit]]
    return names


@login_required
@require_GET
def item_path(request, pk):
    """The run's stage path for the item page, refreshed by htmx after a step finishes."""
    item = get_item(request, pk)
    return render(request, "workguide/_item_path.html", {
        "item": item, "path": services.stage_path(item.run), "oob_status": True,
        "cancel_note": services.cancel_note(item.run_id) if item.run.status == "canceled" else None,
    })


def _back_to_item(item):
    return redirect("workguide:item", pk=item.pk)


@login_required
@require_POST
def claim_item(request, pk):
    item = get_item(request, pk)
    try:
        services.claim(item, request.user)
        messages.success(request, f"You claimed “{item.label}”: only you can work on it until you unclaim it.")
    except (ClaimedByOther, WorkItemClosed, PermissionDenied) as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back_to_item(item)


@login_required
@require_POST
def unclaim_item(request, pk):
    item = get_item(request, pk)
    try:
        services.unclaim(item, request.user)
        messages.success(request, f"“{item.label}” is back with everyone it is assigned to.")
    except (ClaimedByOther, PermissionDenied) as exc:
        messages.error(request, str(exc))
    return _back_to_item(item)


@login_required
@require_POST
def reassign_item(request, pk):
    item = get_item(request, pk)
    if not services.can_reassign(item, request.user):
        raise Http404("no such work item")
    form = ReassignForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
        return _back_to_item(item)
    try:
        services.reassign(item, request.user, form.cleaned_data["assignee"])
        messages.success(request, f"“{item.label}” now goes to {form.cleaned_data['assignee']}.")
        if not services.visible_items(request.user).filter(pk=item.pk).exists():
            return redirect("workguide:my_work")  # handed on: no longer theirs to see
    except ValidationError as exc:
        messages.error(request, " ".join(_messages_of(exc)))
    except (WorkItemClosed, PermissionDenied) as exc:
        messages.error(request, str(exc))
    return _back_to_item(item)


@login_required
@require_POST
def comment_item(request, pk):
    item = get_item(request, pk)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            services.add_comment(item, request.user, form.cleaned_data["text"])
            form = CommentForm()
        except ValidationError as exc:
            for message in _messages_of(exc):
                form.add_error("text", message)
    if request.htmx:
        return render(request, "workguide/_comments.html", {
            "item": item, "comments": list(services.comments(item)), "comment_form": form,
        })
    if form.errors:
        messages.error(request, " ".join(m for ms in form.errors.values() for m in ms))
    return _back_to_item(item)


# ---------------------------------------------------------------------------
# The record component
# ---------------------------------------------------------------------------

PAST_RUNS = 5


def component_context(request, record_model, record_pk, notice=""):
    """The live orchestrations on a record, whom each waits on, the caller's open items, the past runs.

    Who may see runs gets every run on the record; anyone else only the
    runs they requested and those in which they have an item
    (``services.record_runs``), and nothing about the others. Callers check
    first that the caller may see the component (``visible_component_context``
    does both). A fixed number of queries whatever the number of runs and
    items (``test_component_queries``): the runs with their past outcomes in
    one, their stage runs in one, every item shown in one, the version in one.
    """
    user = request.user
    permissions.remember_memberships(user)  # every item's panel asks whether the caller is an assignee
    runs, past = services.component_runs(services.record_runs(user, record_model, record_pk), PAST_RUNS)
    items = services.component_items(user, record_model, record_pk, [run.pk for run in runs], ITEM_RELATED)
    waiting = services.waiting_on(runs, items)
    paths = [{"run": run, "path": services.stage_path(run, list(run.stage_runs.all())),
              "waiting": [{"item": item, "holder": services.holder_text(item)} for item in waiting[run.pk]]}
             for run in runs]
    mine = sorted((item for item in items if item.mine), key=lambda i: (i.created_at, i.pk))
    panels = [panel_context(request, item, ctx="component") for item in mine]
    dom_id = "wg-" + "".join(ch if ch.isalnum() else "-" for ch in f"{record_model}-{record_pk}")
    return {
        "paths": paths, "panels": panels, "notice": notice, "dom_id": dom_id, "now": timezone.now(),
        "past_runs": past,
        "version": services.record_items_version(record_model, record_pk),
        "poll_seconds": baton_settings.BATON_WORKGUIDE_POLL_SECONDS,
        "record_model": record_model, "record_pk": str(record_pk), "request": request, "user": user,
    }


def visible_component_context(request, record_model, record_pk):
    """``component_context`` if the caller may see the record's component (``services.may_see_record_runs``),
    else None.

    The permission follows from what the context found: a run or an item
    there is one the caller requested, has an item in or may see. Only an
    empty component asks the rule itself, so a component with something in
    it costs no query more than its context.
    """
    context = component_context(request, record_model, record_pk)
    if context["paths"] or context["panels"] or context["past_runs"] or permissions.can_view_runs(request.user):
        return context
    return context if services.may_see_record_runs(request.user, record_model, record_pk) else None


@login_required
@require_GET
def component(request, model, pk):
    """The Work Guide component of one record, alone (htmx refresh).

    404 for whoever may not see the record's runs (``services.may_see_record_runs``):
    such a caller gets the same answer for a record with runs, one without,
    one that does not exist and a model that is not a record model.
    """
    from orchestration.records import RecordError, get_model, load_record

    try:
        get_model(model)
    except RecordError:
        raise Http404("no such record")
    known = request.GET.get("known")
    if known:  # the live refresh: nothing new, nothing gone → 204, for those who may see it only
        permissions.remember_memberships(request.user)
        if not services.may_see_record_runs(request.user, model, pk) or load_record(model, pk) is None:
            raise Http404("no such record")
        if known == services.record_items_version(model, pk):
            return HttpResponse(status=204)
    context = visible_component_context(request, model, pk)  # None: may not see it, checked before the record
    if context is None or load_record(model, pk) is None:
        raise Http404("no such record")
    return render(request, "workguide/component.html", context)


# ---------------------------------------------------------------------------
# The launch button's target
# ---------------------------------------------------------------------------

may_launch = permissions.can_launch


def running_runs(api_name, record_model, record_pk):
    """The running runs of ``api_name`` on a record (any version), oldest first."""
    from orchestration.models import OrchestrationRun, RunStatus

    if not record_model:
        return OrchestrationRun.objects.none()
    return (OrchestrationRun.objects.filter(orchestration__api_name=api_name, record_model=record_model,
                                            record_pk=str(record_pk), status=RunStatus.RUNNING)
            .select_related("started_by").order_by("started_at", "id"))


TOKEN_LENGTH = 32


@login_required
@require_POST
def launch(request):
    """Start an autolaunched orchestration on a record from the launch button's form; back with a message.

    Idempotent per rendered form: its one-time ``token`` is stored with the
    run it started (``LaunchRequest``, unique), in the run's transaction, so
    a resent form (a double click, a reload) starts nothing and is answered
    with the first run. When a run of the orchestration is already running
    on the record, nothing starts unless the form says ``another``.
    """
    import orchestration
    from django.db import IntegrityError, transaction
    from orchestration.models import Orchestration
    from orchestration.starts import LaunchError

    from .forms import LaunchForm
    from .models import LaunchRequest

    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("workguide:my_work")
    if not may_launch(request.user):
        messages.error(request, "You may not start orchestrations (permission orchestration.launch_orchestration).")
        return redirect(back)
    api_name = request.POST.get("api_name", "")
    model, pk = request.POST.get("record_model", ""), request.POST.get("record_pk", "")
    token = request.POST.get("token", "")
    if len(token) != TOKEN_LENGTH or not token.isalnum():
        messages.error(request, "This start form is out of date: reload the page and start again.")
        return redirect(back)
    first = LaunchRequest.objects.filter(token=token).select_related("run__orchestration").first()
    if first is not None:
        return _already_launched(request, first, back)
    orch = Orchestration.objects.filter(api_name=api_name, status="active").only("inputs", "label").first()
    form = LaunchForm(request.POST, declared=orch.inputs if orch else ())
    if not form.is_valid():
        problems = "; ".join(f"{form.fields[name].label}: {' '.join(errs)}" if name in form.fields else " ".join(errs)
                             for name, errs in form.errors.items())
        messages.error(request, f"Could not start {api_name}: {problems}")
        return redirect(back)
    running = list(running_runs(api_name, model, pk)[:1])
    if running and not request.POST.get("another"):
        messages.warning(request, f"{orch.label or api_name} is already running on this record (run "
                                  f"#{running[0].pk}); nothing was started. Tick “Start another” to start a second one.")
        return redirect(back)
    record = {"model": model, "pk": pk} if model else None
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    claim = LaunchRequest.objects.create(token=token, user=request.user)
            except IntegrityError:  # the same form, sent again while the first was starting: it has finished now
                first = LaunchRequest.objects.filter(token=token).select_related("run__orchestration").first()
                return _already_launched(request, first, back)
            run = orchestration.launch(api_name, inputs=form.inputs(), record=record, user=request.user)
            claim.run = run
            claim.save(update_fields=["run"])
    except LaunchError as exc:  # nothing kept, the token neither: the form may be corrected and sent again
        problems = "; ".join(_messages_of(exc))
        messages.error(request, f"Could not start {api_name or 'the orchestration'}: {problems}")
        return redirect(back)
    except Exception:  # an engine failure must not become a 500 page
        log.exception("launch of %s on %s:%s failed", api_name, model, pk)
        messages.error(request, f"Could not start {api_name}: an unexpected error happened (logged).")
        return redirect(back)
    messages.success(request, f"Started {run.orchestration.label or api_name} (run #{run.pk}).")
    return redirect(back)


def _already_launched(request, first, back):
    if first is not None and first.user_id != request.user.pk:
        messages.error(request, "This start form is out of date: reload the page and start again.")
        return redirect(back)
    if first is None or first.run is None:
        messages.info(request, "This form was already sent; its run is no longer there.")
    else:
        name = first.run.orchestration.label or first.run.orchestration.api_name
        messages.info(request, f"Started {name} (run #{first.run_id}). This form was sent more than once; "
                               f"only one run was started.")
    return redirect(back)
