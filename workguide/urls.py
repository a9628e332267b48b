from django.urls import path

from . import views

app_name = "workguide"
urlpatterns = [
    path("", views.my_work, name="my_work"),
]
