from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("employees/<int:pk>/", views.employee_detail, name="employee"),
    path("opportunities/<int:pk>/", views.opportunity_detail, name="opportunity"),
]
