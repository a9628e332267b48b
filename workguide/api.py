"""REST API for work items (DRF): the Work Guide for programs.

Endpoints (under ``/api/``):

- ``GET  work-items/``                   the caller's items (direct, via groups, via queues), open by default
- ``GET  work-items/{id}/``              one item, with its screen flow's fields (what ``complete`` takes) and
                                         ``current_screen`` with every expression evaluated (no CEL in the client)
- ``POST work-items/{id}/preview/``      ``{values}`` typed so far: the current screen redrawn against them
- ``POST work-items/{id}/complete/``     ``{values}``: validated by the same screen-flow code as the page
- ``POST work-items/{id}/reassign/``     ``{assignee: "user:NAME" | "group:NAME" | "queue:NAME"}`` (managers,
                                         or whoever holds the item: hand it on)
- ``POST work-items/{id}/claim/``        take an item for yourself (any assignee; a user item too)
- ``POST work-items/{id}/release/``      give a claimed item back (``unclaim/`` is the same)
- ``GET|POST work-items/{id}/comments/`` read or add comments
- ``GET|POST delegations/``, ``GET|DELETE delegations/{id}/``  out-of-office substitutes

Visibility is the Work Guide's (``workguide.services.visible_items``): an item
is seen by its assignee (a group's or queue's members) and by holders of
``workguide.manage_workitem``; anyone else gets 404, for reading and acting.
"""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import (
    OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from flows.compiled import FlowSpec
from flows.runtime import FlowError
from orchestration import permissions
from orchestration.api.common import (
    ID_LOOKUP, BatonAPIView, Conflict, check_size, django_errors, error_example, error_responses, id_parameter,
    query_choice,
)

from . import services
from .models import WorkItem

# ---------------------------------------------------------------------------
# Serializers
# ---------------------------------------------------------------------------


class RecordSerializer(serializers.Serializer):
    model = serializers.CharField()
    pk = serializers.CharField()
    label = serializers.CharField()


def _username(user):
    return user.get_username() if user is not None else None


class WorkItemSerializer(serializers.ModelSerializer):
    """A work item (summary, as listed)."""

    run = serializers.IntegerField(source="run_id", help_text="The run's id (GET /api/runs/{id}/).")
    orchestration = serializers.CharField(source="run.orchestration.api_name")
    step = serializers.CharField(source="step_run.step_name")
    assignee = serializers.CharField(source="assignee_display", help_text='"user:NAME", "group:NAME" or "queue:NAME".')
    claimed_by = serializers.SerializerMethodField()
    completed_by = serializers.SerializerMethodField()
    delegated_from = serializers.SerializerMethodField(
        help_text="The user this item was for, when their delegation gave it to its assignee (else null).")
    record = serializers.SerializerMethodField()
    is_overdue = serializers.BooleanField()

    class Meta:
        model = WorkItem
        fields = ["id", "status", "label", "run", "orchestration", "step", "assignee", "claimed_by", "delegated_from",
                  "record", "inputs", "created_at", "due_at", "is_overdue", "completed_at", "completed_by"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_delegated_from(self, item):
        return _username(item.delegated_from) if item.delegated_from_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_claimed_by(self, item):
        return _username(item.claimed_by) if item.claimed_by_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_completed_by(self, item):
        return _username(item.completed_by) if item.completed_by_id else None

    @extend_schema_field(RecordSerializer(allow_null=True))
    def get_record(self, item):
        if not item.record_model:
            return None
        return {"model": item.record_model, "pk": item.record_pk, "label": item.record_label}


class ChoiceSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()


class FieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="text, textarea, number, boolean, date, datetime, choice, multichoice, "
                                           "email or display (read-only: send nothing for it).")
    label = serializers.CharField()
    help_text = serializers.CharField()
    required = serializers.BooleanField()
    choices = ChoiceSerializer(many=True, help_text="choice and multichoice fields: the allowed values.")
    visible_if = serializers.CharField(help_text="An expression: the field counts only while it holds.")
    default = serializers.CharField(help_text="An expression giving the initial value.")
    text = serializers.CharField(help_text="display fields: the text, with {!expr} merge fields.")


class ScreenSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    fields = FieldSerializer(many=True)
    validate_message = serializers.CharField(help_text="Shown when the screen's own check fails.")


def screens_of(spec):
    return [
        {
            "name": screen.name, "label": screen.label, "validate_message": screen.validate_message,
            "fields": [
                {
                    "name": f.name, "type": f.type, "label": f.label, "help_text": f.help_text,
                    "required": f.required, "choices": [{"value": v, "label": lab} for v, lab in f.choice_pairs()],
                    "visible_if": f.visible_if, "default": f.default, "text": f.text,
                }
                for f in screen.fields
            ],
        }
        for screen in spec.screens
    ]


class ResolvedFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    label = serializers.CharField()
    help_text = serializers.CharField()
    required = serializers.BooleanField()
    choices = ChoiceSerializer(many=True)
    visible = serializers.BooleanField(help_text="Whether its visible_if holds now: hidden fields are sent empty.")
    value = serializers.JSONField(help_text="The value to show: typed so far, drafted, kept, or the default evaluated.")
    text = serializers.CharField(help_text="display fields: the text with its merge fields resolved.")


class CurrentScreenSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based.")
    count = serializers.IntegerField()
    name = serializers.CharField()
    label = serializers.CharField()
    fields = ResolvedFieldSerializer(many=True)


def resolved_screen(item, typed=None):
    """The item's current screen with every expression evaluated (for a client without CEL), or None.

    ``typed`` (field → value as the page's form data) redraws it from what is
    typed, as the page's live preview does: visibility and merge text follow.
    """
    from flows.compiled import FlowSpec
    from flows.runtime import FlowError
    from flows.screens import ScreenFlowState, json_value

    try:
        state = ScreenFlowState(FlowSpec.load(item.flow_id), item.inputs, item.progress)
    except FlowError:
        return None
    form = state.preview(typed) if typed is not None else state.form()
    screen = state.current_screen
    hidden = set(form.hidden_names)
    fields = []
    for f in screen.fields:
        visible = f.name not in hidden
        value = None
        if f.is_input and visible:
            raw = form.initial.get(f.name)
            try:
                value = json_value(f, form.fields[f.name].clean(raw)) if raw not in (None, "", []) else raw
            except Exception:
                value = raw
        fields.append({
            "name": f.name, "type": f.type, "label": f.label, "help_text": f.help_text, "required": f.required,
            "choices": [{"value": v, "label": lab} for v, lab in f.choice_pairs()], "visible": visible,
            "value": value if value not in ("",) else None,
            "text": form.fields[f.name].text if f.type == "display" and visible else "",
        })
    return {"index": state.index, "count": state.screen_count, "name": screen.name, "label": screen.label,
            "fields": fields}


class WorkItemDetailSerializer(WorkItemSerializer):
    """A work item with the screen flow it is finished with, and what the caller may do."""

    flow = serializers.SerializerMethodField()
    screens = serializers.SerializerMethodField(help_text="The screens and fields: send their values to complete.")
    current_screen = serializers.SerializerMethodField(
        help_text="The screen the item stands on, with display text resolved, defaults evaluated and each field's "
                  "visibility: a client needs no CEL (null once the item is closed).")
    progress = serializers.SerializerMethodField(help_text="Values saved so far on the page (field → value).")
    can_complete = serializers.SerializerMethodField(help_text="Whether the caller may complete it now.")

    class Meta(WorkItemSerializer.Meta):
        fields = WorkItemSerializer.Meta.fields + ["flow", "screens", "current_screen", "progress", "can_complete"]
        read_only_fields = fields

    def _spec(self, item):
        if not hasattr(self, "_specs"):
            self._specs = {}
        if item.flow_id not in self._specs:
            self._specs[item.flow_id] = FlowSpec.load(item.flow_id)
        return self._specs[item.flow_id]

    @extend_schema_field(serializers.DictField(child=serializers.JSONField()))
    def get_flow(self, item):
        spec = self._spec(item)
        return {"api_name": spec.api_name, "version": spec.version, "label": spec.label}

    @extend_schema_field(ScreenSerializer(many=True))
    def get_screens(self, item):
        return screens_of(self._spec(item))

    @extend_schema_field(CurrentScreenSerializer(allow_null=True))
    def get_current_screen(self, item):
        return resolved_screen(item) if item.is_open else None

    @extend_schema_field(serializers.DictField(child=serializers.JSONField()))
    def get_progress(self, item):
        values = (item.progress or {}).get("values") if isinstance(item.progress, dict) else None
        return dict(values) if isinstance(values, dict) else {}

    @extend_schema_field(serializers.BooleanField())
    def get_can_complete(self, item):
        request = self.context.get("request")
        return bool(request and item.is_open and services.can_work(item, request.user))


class CompleteSerializer(serializers.Serializer):
    values = serializers.DictField(
        required=False, default=dict,
        help_text="Field name → value for every screen's fields, as the page would submit them: text, numbers, "
                  "true/false, dates as YYYY-MM-DD, date-times as ISO 8601, lists for multichoice.",
    )


class ReassignSerializer(serializers.Serializer):
    assignee = serializers.CharField(max_length=300, help_text='"user:NAME", "group:NAME" or "queue:NAME".')


class CommentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    author = serializers.SerializerMethodField()
    text = serializers.CharField(help_text="At most 5000 characters.", trim_whitespace=False, allow_blank=True)
    created_at = serializers.DateTimeField(source="at", read_only=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_author(self, event):
        return _username(event.actor) if event.actor_id else None

    def to_representation(self, event):
        return {"id": event.pk, "author": self.get_author(event), "text": (event.data or {}).get("text", ""),
                "created_at": serializers.DateTimeField().to_representation(event.at)}


# ---------------------------------------------------------------------------
# Values from JSON to what the screen forms take
# ---------------------------------------------------------------------------

SCALARS = (str, int, float, bool)


def form_values(spec, values):
    """Values as the page's form data: each field gets a single scalar (multichoice: a list of them).

    The screen forms then validate them exactly as they validate a page
    submission. Shapes no page can send (a map, a list for a single field)
    are refused here, keyed by field, so the forms never see them.
    """
    fields = {f.name: f for f in spec.screen_fields()}
    data, errors = {}, {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None or value is None:
            data[name] = value  # unknown names: the flow's own "Unknown field." error
            continue
        if field.type == "multichoice":
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, SCALARS) for v in items):
                errors[name] = ["Enter a list of values."]
                continue
            data[name] = [str(v) for v in items]
        elif field.type == "boolean":
            if not isinstance(value, SCALARS):
                errors[name] = ["Enter true or false."]
                continue
            data[name] = value
        else:
            if not isinstance(value, SCALARS) or isinstance(value, bool) and field.type != "choice":
                errors[name] = ["Enter a single value."]
                continue
            data[name] = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return data, errors


# ---------------------------------------------------------------------------
# The view set
# ---------------------------------------------------------------------------

WORK_ITEM_EXAMPLE = {
    "id": 17, "status": "open", "label": "Pick replacement equipment", "run": 42,
    "orchestration": "equipment_refresh", "step": "pick_equipment", "assignee": "queue:it_support",
    "claimed_by": None, "delegated_from": None, "record": {"model": "demo.employee", "pk": "1", "label": "Grace Hopper"},
    "inputs": {"employee_name": "Grace Hopper", "department": "Engineering", "needs_laptop": True, "remote": False},
    "created_at": "2025-01-06T09:30:00Z", "due_at": "2025-01-09T09:30:00Z", "is_overdue": False,
    "completed_at": None, "completed_by": None,
}
WORK_ITEM_DETAIL_EXAMPLE = {
    **WORK_ITEM_EXAMPLE,
    "flow": {"api_name": "onboarding_pick_equipment", "version": 1, "label": "Pick equipment"},
    "screens": [{
        "name": "hardware", "label": "Hardware", "validate_message": "Pick between 0 and 3 monitors.",
        "fields": [
            {"name": "laptop_model", "type": "choice", "label": "Laptop", "help_text": "", "required": True,
             "choices": [{"value": "thinkpad_x1", "label": "ThinkPad X1 Carbon"}], "visible_if": "needs_laptop",
             "default": '"macbook_pro_14"', "text": ""},
            {"name": "monitors", "type": "number", "label": "External monitors", "help_text": "0 to 3",
             "required": True, "choices": [], "visible_if": "", "default": "1", "text": ""},
        ],
    }],
    "progress": {}, "can_complete": True,
}
COMPLETE_EXAMPLE = {"values": {"laptop_model": "thinkpad_x1", "monitors": 2, "accessories": ["headset", "dock"],
                               "needed_by": "2025-02-03", "notes": "Ship before Friday"}}
COMPLETE_ERROR = error_example(
    "Field errors", "Invalid input: needed_by: This field is required. (and more)", "invalid",
    {"needed_by": ["This field is required."], "non_field_errors": ["Pick between 0 and 3 monitors."]}, ["400"],
)
ALREADY_DONE = error_example("Already completed", "“Pick equipment” was already completed by dave.", "conflict",
                             status_codes=["409"])


RELATED = ["run__orchestration", "step_run", "assignee_user", "assignee_group", "assignee_queue", "claimed_by",
           "completed_by", "delegated_from"]


@extend_schema_view(
    list=extend_schema(
        summary="My work items",
        description=(
            "The caller's work items, newest first: assigned to them, to one of their groups, or to a queue they "
            "belong to (directly or through a group). Open ones by default; `?status=completed|canceled|all` for "
            "others. Holders of `workguide.manage_workitem` may ask for everyone's with `?scope=all`."
        ),
        parameters=[
            OpenApiParameter("status", str, enum=["open", "completed", "canceled", "all"],
                             description="Default: open."),
            OpenApiParameter("scope", str, enum=["mine", "all"],
                             description="all: every item the caller may see (managers); default: mine."),
        ],
        responses={200: WorkItemSerializer(many=True), **error_responses(400, 404)},
        examples=[OpenApiExample("Open items", value=WORK_ITEM_EXAMPLE, response_only=True)],
        tags=["work items"],
    ),
    retrieve=extend_schema(
        summary="A work item",
        description="The item with its screen flow's screens and fields: what `complete` expects in `values`.",
        responses={200: WorkItemDetailSerializer, **error_responses(404)},
        examples=[OpenApiExample("Pick equipment", value=WORK_ITEM_DETAIL_EXAMPLE, response_only=True)],
        tags=["work items"],
    ),
)
@extend_schema(parameters=[id_parameter("work item")])
class WorkItemViewSet(BatonAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Work items: list, read, complete, reassign, claim, comment."""

    lookup_value_regex = ID_LOOKUP
    serializer_class = WorkItemSerializer

    def get_queryset(self):
        user = self.request.user
        related = RELATED
        if self.action == "list":
            scope = query_choice(self.request, "scope", ["mine", "all"], "mine")
            wanted = query_choice(self.request, "status", ["open", "completed", "canceled", "all"], "open")
            if scope == "all":
                qs = services.visible_items(user)
            else:
                # Like My Work: not the items whose step excludes the caller (separation of duties).
                qs = WorkItem.objects.filter(services.assignee_q(user)).exclude(permissions.excluded_items(user))
            if wanted != "all":
                qs = qs.filter(status=wanted)
            return qs.select_related(*related).order_by("-created_at", "-id")
        return services.visible_items(user).select_related(*related)

    def get_serializer_class(self):
        return WorkItemSerializer if self.action == "list" else WorkItemDetailSerializer

    def _detail(self, item, code=status.HTTP_200_OK):
        # Read afresh; an item its holder just handed on is no longer visible to them, yet the answer shows it.
        item = self.get_queryset().model.objects.select_related(*RELATED).get(pk=item.pk)
        return Response(WorkItemDetailSerializer(item, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Complete a work item",
        description=(
            "Finish the item's screen flow with `values` (every screen's fields by name). They are validated by "
            "the same code as the Work Guide page: on errors, 400 with `errors` keyed by field name "
            "(`non_field_errors` for a screen's own check) and nothing changed. 409 when the item is no longer open "
            "or another person has claimed it. On success the step completes and the run moves on."
        ),
        request=CompleteSerializer,
        responses={200: WorkItemDetailSerializer, **error_responses(400, 403, 404, 409,
                                                                    examples=[COMPLETE_ERROR, ALREADY_DONE])},
        examples=[OpenApiExample("Pick equipment", value=COMPLETE_EXAMPLE, request_only=True)],
        tags=["work items"],
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        item = self.get_object()
        body = CompleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data["values"]
        check_size("values", values)
        if not item.is_open:
            raise Conflict(services._closed_message(item))
        data, errors = form_values(FlowSpec.load(item.flow_id), values)
        if errors:
            raise exceptions.ValidationError(errors)
        try:
            item = services.complete_work_item(item, request.user, data)
        except services.ClaimedByOther as exc:
            raise Conflict(str(exc))
        except services.WorkItemClosed as exc:
            raise Conflict(str(exc))
        except FlowError as exc:
            raise Conflict(f"This work item cannot be completed: {exc}")
        except DjangoPermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc) or None)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(django_errors(exc))
        return self._detail(item)

    @extend_schema(
        summary="Preview the current screen",
        description="Send what is typed on the current screen (`values`, as for `complete`); get the screen back "
                    "with visibility, merge text and defaults evaluated against it, as the page redraws it. "
                    "Nothing is stored. 409 when the item is closed.",
        request=CompleteSerializer, responses={200: CurrentScreenSerializer, **error_responses(400, 404, 409)},
        tags=["work items"],
    )
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        from flows.compiled import FlowSpec

        item = self.get_object()
        body = CompleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        check_size("values", body.validated_data["values"])
        if not item.is_open:
            raise Conflict(services._closed_message(item))
        data, errors = form_values(FlowSpec.load(item.flow_id), body.validated_data["values"])
        if errors:
            raise exceptions.ValidationError(errors)
        from django.http import QueryDict

        typed = QueryDict(mutable=True)
        for name, value in data.items():
            if isinstance(value, list):
                typed.setlist(name, value)
            elif value is not None:
                typed[name] = value if not isinstance(value, bool) else ("on" if value else "")
        return Response(resolved_screen(item, typed))

    @extend_schema(
        summary="Reassign a work item",
        description="Give the item to a user, group or queue: managers (`workguide.manage_workitem`) any item, "
                    "and whoever holds it (the user it is given to, or who claimed it) may hand it on. "
                    "403 for anyone else; 400 when the assignee does not exist; 409 when the item is no longer "
                    "open.",
        request=ReassignSerializer,
        responses={200: WorkItemDetailSerializer, **error_responses(400, 403, 404, 409, examples=[
            error_example("Unknown user", "Invalid input: assignee: assignee 'user:zed': no active user 'zed'",
                          "invalid", {"assignee": ["assignee 'user:zed': no active user 'zed'"]}, ["400"])])},
        examples=[OpenApiExample("To a queue", value={"assignee": "queue:it_support"}, request_only=True)],
        tags=["work items"],
    )
    @action(detail=True, methods=["post"])
    def reassign(self, request, pk=None):
        item = self.get_object()
        if not services.can_reassign(item, request.user):
            raise exceptions.PermissionDenied(
                "Only the item's holder (the user it is given to, or who claimed it) or a holder of "
                "workguide.manage_workitem may reassign it."
            )
        body = ReassignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            item = services.reassign(item, request.user, body.validated_data["assignee"])
        except services.WorkItemClosed as exc:
            raise Conflict(str(exc))
        except DjangoPermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc) or None)
        return self._detail(item)

    @extend_schema(
        summary="Claim a work item",
        description="Take an item for yourself, so nobody else (managers included) can complete it until it is "
                    "released. Any assignee may claim: a group's or queue's member, or the user an item is given "
                    "to (it marks the item as taken up). 403 for a manager who is not an assignee; 409 when "
                    "someone else holds it or it is closed.",
        request=None,
        responses={200: WorkItemDetailSerializer, **error_responses(403, 404, 409)},
        tags=["work items"],
    )
    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        item = self.get_object()
        try:
            item = services.claim(item, request.user)
        except (services.ClaimedByOther, services.WorkItemClosed) as exc:
            raise Conflict(str(exc))
        except DjangoPermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc) or None)
        return self._detail(item)

    @extend_schema(
        summary="Release a work item",
        description="Give a claimed item back to its group or queue (a user item stays with its user): the "
                    "claimer, or a manager. 409 when someone else holds the claim. `unclaim/` is the same.",
        request=None,
        responses={200: WorkItemDetailSerializer, **error_responses(403, 404, 409)},
        tags=["work items"],
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        item = self.get_object()
        if item.claimed_by_id is not None and not services.can_release(item, request.user):
            raise Conflict(f"{item.label} is claimed by {item.claimed_by}")
        try:
            item = services.unclaim(item, request.user)
        except services.ClaimedByOther as exc:
            raise Conflict(str(exc))
        return self._detail(item)

    @extend_schema(summary="Unclaim a work item", description="The same as `release/`.", request=None,
                   responses={200: WorkItemDetailSerializer, **error_responses(403, 404, 409)}, tags=["work items"])
    @action(detail=True, methods=["post"])
    def unclaim(self, request, pk=None):
        return self.release(request, pk)

    @extend_schema(
        methods=["GET"],
        summary="Comments on a work item",
        description="Oldest first, paginated.",
        responses={200: CommentSerializer(many=True), **error_responses(404)},
        tags=["work items"],
    )
    @extend_schema(
        methods=["POST"],
        summary="Comment on a work item",
        description="Anyone who may see the item may comment. 400 for an empty text or one over 5000 characters.",
        request=CommentSerializer,
        responses={201: CommentSerializer, **error_responses(400, 404)},
        examples=[OpenApiExample("A comment", value={"text": "Waiting for the budget sign-off."},
                                 request_only=True)],
        tags=["work items"],
    )
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        item = self.get_object()
        if request.method == "POST":
            body = CommentSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            services.add_comment(item, request.user, body.validated_data["text"])
            event = services.comments(item).order_by("-id").first()
            return Response(CommentSerializer(event).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(services.comments(item).order_by("id"))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)


# ---------------------------------------------------------------------------
# Delegations
# ---------------------------------------------------------------------------

def _user_named(name, field):
    from django.contrib.auth import get_user_model

    model = get_user_model()
    user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
    if user is None:
        raise exceptions.ValidationError({field: [f"no user {name!r}"]})
    return user


class DelegationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    user = serializers.CharField(required=False, max_length=150,
                                 help_text="Whose work is delegated (username); default: the caller. Another "
                                           "user's needs workguide.manage_workitem.")
    substitute = serializers.CharField(max_length=150, help_text="Who receives it meanwhile (username).")
    starts = serializers.DateTimeField()
    ends = serializers.DateTimeField()
    active = serializers.BooleanField(read_only=True, help_text="In force now.")

    def to_representation(self, delegation):
        field = serializers.DateTimeField()
        return {"id": delegation.pk, "user": delegation.user.get_username(),
                "substitute": delegation.substitute.get_username(),
                "starts": field.to_representation(delegation.starts), "ends": field.to_representation(delegation.ends),
                "active": delegation.is_active()}


DELEGATION_EXAMPLE = {"substitute": "bob", "starts": "2025-08-01T00:00:00Z", "ends": "2025-08-15T00:00:00Z"}


@extend_schema_view(
    list=extend_schema(summary="Delegations",
                       description="The caller's delegations and those naming them as substitute (managers: all).",
                       responses={200: DelegationSerializer(many=True), **error_responses(400, 404)}, tags=["delegations"]),
    retrieve=extend_schema(summary="A delegation", responses={200: DelegationSerializer, **error_responses(404)},
                           tags=["delegations"]),
    create=extend_schema(
        summary="Set a delegation",
        description="While it lasts (`starts` ≤ now < `ends`), new work items given to `user` by name go to "
                    "`substitute`, recorded as `delegated_from`; reminders for `user`'s items go to the "
                    "substitute; `user` still sees them. 400 for a period that ends before it starts or overlaps "
                    "another of the user's, an unknown or inactive substitute, or the user as their own; 403 for "
                    "another user's without `workguide.manage_workitem`.",
        request=DelegationSerializer, responses={201: DelegationSerializer, **error_responses(400, 403)},
        examples=[OpenApiExample("Two weeks away", value=DELEGATION_EXAMPLE, request_only=True)],
        tags=["delegations"]),
    destroy=extend_schema(summary="End a delegation", description="Its user, or a manager. Items already "
                          "delegated stay with the substitute. Answers with the delegation as it was.",
                          responses={200: DelegationSerializer, **error_responses(403, 404)},
                          tags=["delegations"]),
)
@extend_schema(parameters=[id_parameter("delegation")])
class DelegationViewSet(BatonAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Out-of-office substitutes."""

    lookup_value_regex = r"[0-9]{1,18}"
    serializer_class = DelegationSerializer

    def get_queryset(self):
        return services.delegations_for(self.request.user).order_by("starts", "id")

    def create(self, request):
        body = DelegationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = _user_named(data["user"], "user") if data.get("user") else request.user
        substitute = _user_named(data["substitute"], "substitute")
        try:
            delegation = services.set_delegation(request.user, substitute, data["starts"], data["ends"], user=user)
        except DjangoPermissionDenied as exc:
            raise exceptions.PermissionDenied(str(exc) or None)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(django_errors(exc))
        return Response(DelegationSerializer(delegation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        delegation = self.get_object()
        if not services.may_delete_delegation(delegation, request.user):
            raise exceptions.PermissionDenied("only the delegation's user or a holder of workguide.manage_workitem "
                                              "may end it")
        gone = DelegationSerializer(delegation).data
        delegation.delete()
        return Response(gone)
