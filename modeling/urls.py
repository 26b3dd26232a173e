"""The Models page of a project, mounted at the site root by config/urls.py."""
from django.urls import include, path

from modeling import views
from modeling import browser_views

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("models/", views.models_page, name="project-models"),
    path("models/retrain/", views.retrain, name="project-models-retrain"),
    path("models/settings/", views.training_settings, name="project-models-settings"),
    path("models/<int:version_id>/promote/", views.promote, name="project-models-promote"),
    path("models/<int:version_id>/rollback/", views.rollback, name="project-models-rollback"),
    # The image browser (modeling/browser_views.py).
    path("browse/", browser_views.image_browser_page, name="project-image-browser"),
    path("browse/<int:image_id>/", browser_views.browser_image_page, name="project-browser-image"),
]

urlpatterns = [
    path("projects/<slug:slug>/", include(project_routes)),
]
