from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

# Baton is mounted at the root, as any host would mount it under a prefix
# (see docs/embedding.md): /workguide/, /monitor/ and /api/ come from it.
urlpatterns = [
    path("", RedirectView.as_view(pattern_name="workguide:my_work", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("demo/", include("demo.urls")),
    path("", include("orchestration.urls")),
]
