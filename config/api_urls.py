"""/api/v1/: each app owns its routes in ``<app>/api/urls.py``."""
from django.urls import include, path

urlpatterns = [
    path("", include("labeling.api.urls")),
    path("", include("modeling.api.urls")),
]
