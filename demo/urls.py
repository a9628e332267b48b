from django.urls import path

from . import views

app_name = "demo"
urlpatterns = [
    path("", views.employee_list, name="index"),
    path("employees/", views.employee_list, name="employees"),
    path("employees/new/", views.employee_create, name="employee_add"),
    path("employees/<int:pk>/", views.employee_detail, name="employee"),
    path("opportunities/", views.opportunity_list, name="opportunities"),
    path("opportunities/new/", views.opportunity_create, name="opportunity_add"),
    path("opportunities/<int:pk>/", views.opportunity_detail, name="opportunity"),
    path("opportunities/<int:pk>/edit/", views.opportunity_edit, name="opportunity_edit"),
]
