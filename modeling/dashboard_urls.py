"""The project dashboard's pages, mounted at the site root by config/urls.py."""
from django.urls import path

from modeling import dashboard_views as views

urlpatterns = [
    path("projects/<slug:slug>/dashboard/", views.dashboard, name="project-dashboard"),
    path("projects/<slug:slug>/dashboard/recompute/", views.recompute, name="project-dashboard-recompute"),
    path("projects/<slug:slug>/dashboard/raters/<int:user_id>/exclusion/", views.rater_exclusion,
         name="project-rater-exclusion"),
    path("projects/<slug:slug>/dashboard/<slug:table>.csv", views.table_csv, name="project-dashboard-csv"),
]
