"""The analyses' pages, mounted at the site root by config/urls.py."""
from django.urls import include, path

from modeling import analysis_views as views

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("analyses/tags/", views.tag_panel, name="analysis-tags"),
    path("analyses/metadata/", views.metadata_panel, name="analysis-metadata"),
]

urlpatterns = [
    path("images/<int:image_id>/", views.image_detail, name="image-detail"),
    path("images/<int:image_id>/heat-map.png", views.image_heat_map, name="image-heat-map"),
    path("projects/<slug:slug>/", include(project_routes)),
]
