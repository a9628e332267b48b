"""A host's URLconf: Baton under ``ops/`` (tests/config/test_embedding.py)."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ops/", include("orchestration.urls")),
]
