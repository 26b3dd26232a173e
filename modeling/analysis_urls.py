"""The analyses' pages, mounted at the site root by config/urls.py."""
from django.urls import path

from modeling import analysis_views as views

urlpatterns = [
    path("projects/<slug:slug>/analyses/tags/", views.tag_panel, name="analysis-tags"),
    path("projects/<slug:slug>/analyses/metadata/", views.metadata_panel, name="analysis-metadata"),
    path("images/<int:image_id>/", views.image_detail, name="image-detail"),
    path("images/<int:image_id>/heat-map.png", views.image_heat_map, name="image-heat-map"),
]
