from django.urls import path

from . import views

app_name = "workguide"
urlpatterns = [
    path("", views.my_work, name="my_work"),
    path("results/", views.my_work_results, name="my_work_results"),
    path("delegation/", views.delegate, name="delegate"),
    path("delegation/<int:pk>/end/", views.end_delegation, name="end_delegation"),
    path("bulk/", views.bulk, name="bulk"),
    path("team/", views.team, name="team"),

    path("filters/", views.save_filter, name="save_filter"),
    path("filters/saved/", views.saved_filters, name="saved_filters"),
    path("filters/<int:pk>/delete/", views.delete_filter, name="delete_filter"),
    path("items/<int:pk>/", views.item_page, name="item"),
    path("items/<int:pk>/flow/", views.flow_panel, name="flow"),
    path("items/<int:pk>/flow/preview/", views.flow_preview, name="flow_preview"),
    path("items/<int:pk>/flow/draft/", views.flow_draft, name="flow_draft"),
    path("items/<int:pk>/path/", views.item_path, name="item_path"),
    path("items/<int:pk>/claim/", views.claim_item, name="claim"),
    path("items/<int:pk>/unclaim/", views.unclaim_item, name="unclaim"),
    path("items/<int:pk>/reassign/", views.reassign_item, name="reassign"),
    path("items/<int:pk>/comments/", views.comment_item, name="comment"),
    path("records/<str:model>/<str:pk>/", views.component, name="component"),
    path("launch/", views.launch, name="launch"),
]
