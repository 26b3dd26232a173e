from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/rate/", views.rate, name="project-rate"),
]
