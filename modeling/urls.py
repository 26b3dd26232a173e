"""The Models page of a project, mounted at the site root by config/urls.py."""
from django.urls import path

from modeling import views
from modeling import browser_views

urlpatterns = [
    path("projects/<slug:slug>/models/", views.models_page, name="project-models"),
    path("projects/<slug:slug>/models/retrain/", views.retrain, name="project-models-retrain"),
    path("projects/<slug:slug>/models/settings/", views.training_settings, name="project-models-settings"),
    path("projects/<slug:slug>/models/<int:version_id>/promote/", views.promote, name="project-models-promote"),
    path("projects/<slug:slug>/models/<int:version_id>/rollback/", views.rollback, name="project-models-rollback"),
    # The image browser (modeling/browser_views.py).
    path("projects/<slug:slug>/browse/", browser_views.image_browser_page, name="project-image-browser"),
    path("projects/<slug:slug>/browse/<int:image_id>/", browser_views.browser_image_page,
         name="project-browser-image"),
]
