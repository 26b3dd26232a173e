"""The modeling pages of a project (models, image browser, dashboard, analyses), mounted at the site root by
config/urls.py."""
from django.urls import include, path

from modeling import analysis_views, browser_views, dashboard_views, leaderboard_views, views

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("models/", views.models_page, name="project-models"),
    path("models/retrain/", views.retrain, name="project-models-retrain"),
    path("models/settings/", views.training_settings, name="project-models-settings"),
    path("models/<id:version_id>/promote/", views.promote, name="project-models-promote"),
    path("models/<id:version_id>/rollback/", views.rollback, name="project-models-rollback"),
    path("models/<id:version_id>/new-campaign/", views.new_campaign, name="project-models-new-campaign"),
    path("models/<id:version_id>/warm-start-into/", views.warm_start_into, name="project-models-warm-start-into"),
    # The image browser (modeling/browser_views.py).
    path("browse/", browser_views.image_browser_page, name="project-image-browser"),
    path("browse/<id:image_id>/", browser_views.browser_image_page, name="project-browser-image"),
    # The dashboard (modeling/dashboard_views.py).
    path("dashboard/", dashboard_views.dashboard, name="project-dashboard"),
    path("dashboard/recompute/", dashboard_views.recompute, name="project-dashboard-recompute"),
    path("dashboard/raters/<id:user_id>/exclusion/", dashboard_views.rater_exclusion,
         name="project-rater-exclusion"),
    path("dashboard/<slug:table>.csv", dashboard_views.table_csv, name="project-dashboard-csv"),
    # The analyses (modeling/analysis_views.py).
    path("analyses/tags/", analysis_views.tag_panel, name="analysis-tags"),
    path("analyses/metadata/", analysis_views.metadata_panel, name="analysis-metadata"),
    # The leaderboard of a categorical field (modeling/leaderboard_views.py).
    path("leaderboard/", leaderboard_views.leaderboard_page, name="project-leaderboard"),
]

urlpatterns = [
    path("images/<id:image_id>/", analysis_views.image_detail, name="image-detail"),
    path("images/<id:image_id>/heat-map.png", analysis_views.image_heat_map, name="image-heat-map"),
    path("projects/<slug:slug>/", include(project_routes)),
]
