from django.contrib import admin

from .models import Queue, WorkItem


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "member_count", "group_list")
    search_fields = ("name", "email")
    filter_horizontal = ("members", "member_groups")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members", "member_groups")

    @admin.display(description="Members")
    def member_count(self, obj):
        return len(obj.members.all())

    @admin.display(description="Groups")
    def group_list(self, obj):
        return ", ".join(g.name for g in obj.member_groups.all()) or "—"


@admin.register(WorkItem)
class WorkItemAdmin(admin.ModelAdmin):
    """Work items are done in the Work Guide; the admin shows them and lets staff reassign."""

    list_display = ("id", "label", "status", "assignee_display", "claimed_by", "record_label", "created_at", "due_at")
    list_filter = ("status", "assignee_type", "flow__api_name")
    search_fields = ("label", "record_label", "record_pk", "assignee_user__username", "assignee_group__name",
                     "assignee_queue__name")
    list_select_related = ("assignee_user", "assignee_group", "assignee_queue", "claimed_by", "flow")
    raw_id_fields = ("step_run", "run", "flow", "claimed_by", "completed_by")
    date_hierarchy = "created_at"
    readonly_fields = (
        "step_run", "run", "flow", "status", "record_model", "record_pk", "record_label", "inputs", "progress",
        "created_at", "completed_at", "completed_by", "reminded_at", "escalated_at",
    )
    fieldsets = (
        (None, {"fields": ("label", "status", ("run", "step_run"), "flow")}),
        ("Assignee", {"fields": ("assignee_type", "assignee_user", "assignee_group", "assignee_queue", "claimed_by")}),
        ("Record", {"fields": (("record_model", "record_pk"), "record_label")}),
        ("Data", {"fields": ("inputs", "progress"), "classes": ("collapse",)}),
        ("Dates", {"fields": (("created_at", "due_at"), ("reminded_at", "escalated_at"), ("completed_at", "completed_by"))}),
    )

    def has_add_permission(self, request):
        return False
