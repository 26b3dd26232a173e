"""The project dashboard's pages, mounted at the site root by config/urls.py."""
from django.urls import include, path

from modeling import dashboard_views as views

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("dashboard/", views.dashboard, name="project-dashboard"),
    path("dashboard/recompute/", views.recompute, name="project-dashboard-recompute"),
    path("dashboard/raters/<int:user_id>/exclusion/", views.rater_exclusion, name="project-rater-exclusion"),
    path("dashboard/<slug:table>.csv", views.table_csv, name="project-dashboard-csv"),
]

urlpatterns = [
    path("projects/<slug:slug>/", include(project_routes)),
]
