"""What the orchestration ModelAdmin gains from the builder: its URLs and "Open in Builder" links."""
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html


class BuilderAdminMixin:
    """Goes before ``DefinitionAdmin`` in ``OrchestrationAdmin``'s bases."""

    def get_urls(self):
        from .urls import builder_urls

        return builder_urls(self) + super().get_urls()

    def builder_url(self, obj):
        opts = self.model._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_builder", args=[obj.pk])

    @admin.display(description="Builder")
    def builder_link(self, obj):
        return format_html('<a href="{}">Open in Builder</a>', self.builder_url(obj))

    def get_list_display(self, request):
        """The admin's columns, with the Builder link at the end unless the admin placed it itself."""
        columns = tuple(super().get_list_display(request))
        return columns if "builder_link" in columns else (*columns, "builder_link")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.model._default_manager.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if obj is not None:
            extra_context["builder_url"] = self.builder_url(obj)
        return super().change_view(request, object_id, form_url, extra_context)
