"""Routes of the model-loop API, mounted under /api/v1/ by config/api_urls.py."""
from django.urls import path

from modeling.api import agreement, analyses, export, views
from modeling.api import version_exports
from modeling.api import image_browser as image_browser_api

urlpatterns = [
    path("projects/<slug:slug>/model-versions/", views.ModelVersionListView.as_view(), name="api-model-versions"),
    path("projects/<slug:slug>/retrain/", views.RetrainView.as_view(), name="api-retrain"),
    path("projects/<slug:slug>/training-settings/", views.TrainingSettingsView.as_view(), name="api-training-settings"),
    path("projects/<slug:slug>/training-runs/", views.TrainingRunListView.as_view(), name="api-training-runs"),
    path("projects/<slug:slug>/promotions/", views.PromotionListView.as_view(), name="api-promotions"),
    path("model-versions/<int:version_id>/", views.ModelVersionDetailView.as_view(), name="api-model-version"),
    path("model-versions/<int:version_id>/promote/", views.PromoteView.as_view(), name="api-model-version-promote"),
    path("model-versions/<int:version_id>/rollback/", views.RollbackView.as_view(), name="api-model-version-rollback"),
    path("training-runs/<int:run_id>/", views.TrainingRunDetailView.as_view(), name="api-training-run"),
    # The scores export (modeling/api/export.py).
    path("projects/<slug:slug>/scores/", export.ScoresExportView.as_view(), name="api-scores"),
    # Dashboards (modeling/api/agreement.py): the stored agreement report, and a rater's exclusion from training.
    path("projects/<slug:slug>/agreement/", agreement.AgreementView.as_view(), name="api-agreement"),
    path("projects/<slug:slug>/raters/<int:user_id>/exclusion/", agreement.RaterExclusionView.as_view(),
         name="api-rater-exclusion"),
    # The poster's analyses (modeling/api/analyses.py): per-tag scores, metadata fields, explanations.
    path("projects/<slug:slug>/tags/summary/", analyses.TagSummaryView.as_view(), name="api-tag-summary"),
    path("projects/<slug:slug>/metadata/fields/", analyses.MetadataFieldsView.as_view(), name="api-metadata-fields"),
    path("projects/<slug:slug>/metadata/<str:field>/summary/", analyses.MetadataSummaryView.as_view(),
         name="api-metadata-summary"),
    path("images/<int:image_id>/explanation/", analyses.ExplanationView.as_view(), name="api-image-explanation"),
    path("images/<int:image_id>/explanation.png", analyses.ExplanationPngView.as_view(),
         name="api-image-explanation-png"),
    # Streamed export of the model versions and their metrics (modeling/api/version_exports.py).
    path("projects/<slug:slug>/export/model-versions/", version_exports.ModelVersionsExportView.as_view(),
         name="api-export-model-versions"),
    # The image browser (modeling/api/image_browser.py).
    path("projects/<slug:slug>/images/browse/", image_browser_api.ImageBrowseView.as_view(), name="api-image-browse"),
    path("projects/<slug:slug>/images/<int:image_id>/comparisons/", image_browser_api.ImageComparisonsView.as_view(),
         name="api-image-comparisons"),
]
