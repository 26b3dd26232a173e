"""The Models page of a project, mounted at the site root by config/urls.py."""
from django.urls import path

from modeling import views

urlpatterns = [
    path("projects/<slug:slug>/models/", views.models_page, name="project-models"),
    path("projects/<slug:slug>/models/retrain/", views.retrain, name="project-models-retrain"),
    path("projects/<slug:slug>/models/settings/", views.training_settings, name="project-models-settings"),
    path("projects/<slug:slug>/models/<int:version_id>/promote/", views.promote, name="project-models-promote"),
    path("projects/<slug:slug>/models/<int:version_id>/rollback/", views.rollback, name="project-models-rollback"),
]
