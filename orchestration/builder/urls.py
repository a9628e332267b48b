"""The builder's URLs, added to the orchestration ModelAdmin's own (``BuilderAdminMixin``).

``<pk>/builder/`` is public (DESIGN §11); the endpoints under it are the
page's htmx requests. Names are ``orchestration_orchestration_builder`` and
``..._builder_<what>`` in the admin site's namespace.
"""
from functools import partial

from django.urls import path

from . import views


def builder_urls(model_admin):
    opts = model_admin.model._meta
    prefix = f"{opts.app_label}_{opts.model_name}_builder"
    wrap = model_admin.admin_site.admin_view

    def route(suffix, view, name):
        return path(f"<path:object_id>/builder/{suffix}", wrap(partial(view, model_admin)),
                    name=f"{prefix}{name}")

    return [
        route("", views.builder_view, ""),
        route("panel/<str:kind>/<int:pk>/", views.panel_view, "_panel"),
        route("change/", views.change_view, "_change"),
        route("check/", views.check_view, "_check"),
        route("assignees/", views.assignees_view, "_assignees"),
        route("dry-run/", views.dry_run_view, "_dry_run"),
        route("activate/", views.activate_view, "_activate"),
        route("new-version/", views.new_version_view, "_new_version"),
        route("diff/", views.diff_view, "_diff"),
        route("yaml/", views.yaml_view, "_yaml"),
    ]
