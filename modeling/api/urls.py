"""Routes of the model-loop API, mounted under /api/v1/ by config/api_urls.py."""
from django.urls import include, path

from modeling.api import agreement, analyses, export, views
from modeling.api import payment_export, version_exports
from modeling.api import leaderboard as leaderboard_api
from modeling.api import image_browser as image_browser_api

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("model-versions/", views.ModelVersionListView.as_view(), name="api-model-versions"),
    path("retrain/", views.RetrainView.as_view(), name="api-retrain"),
    path("training-settings/", views.TrainingSettingsView.as_view(), name="api-training-settings"),
    path("ranking-accuracy/", views.RankingAccuracyView.as_view(), name="api-ranking-accuracy"),
    path("training-runs/", views.TrainingRunListView.as_view(), name="api-training-runs"),
    path("promotions/", views.PromotionListView.as_view(), name="api-promotions"),
    # The scores export (modeling/api/export.py).
    path("scores/", export.ScoresExportView.as_view(), name="api-scores"),
    # Dashboards (modeling/api/agreement.py): the stored agreement report, and a rater's exclusion from training.
    path("agreement/", agreement.AgreementView.as_view(), name="api-agreement"),
    path("raters/<id:user_id>/exclusion/", agreement.RaterExclusionView.as_view(), name="api-rater-exclusion"),
    # The poster's analyses (modeling/api/analyses.py): per-tag scores, metadata fields.
    path("tags/summary/", analyses.TagSummaryView.as_view(), name="api-tag-summary"),
    path("metadata/fields/", analyses.MetadataFieldsView.as_view(), name="api-metadata-fields"),
    path("metadata/<str:field>/summary/", analyses.MetadataSummaryView.as_view(), name="api-metadata-summary"),
    # The leaderboard of a categorical field (modeling/api/leaderboard.py).
    path("leaderboard/", leaderboard_api.LeaderboardView.as_view(), name="api-leaderboard"),
    # Streamed export of the model versions and their metrics (modeling/api/version_exports.py).
    path("export/model-versions/", version_exports.ModelVersionsExportView.as_view(), name="api-export-model-versions"),
    # The payment file of a crowd study (modeling/api/payment_export.py).
    path("export/payment/", payment_export.PaymentExportView.as_view(), name="api-export-payment"),
    # The image browser (modeling/api/image_browser.py).
    path("images/browse/", image_browser_api.ImageBrowseView.as_view(), name="api-image-browse"),
    path("images/<id:image_id>/comparisons/", image_browser_api.ImageComparisonsView.as_view(),
         name="api-image-comparisons"),
]

urlpatterns = [
    path("model-versions/<id:version_id>/", views.ModelVersionDetailView.as_view(), name="api-model-version"),
    path("model-versions/<id:version_id>/promote/", views.PromoteView.as_view(), name="api-model-version-promote"),
    path("model-versions/<id:version_id>/rollback/", views.RollbackView.as_view(), name="api-model-version-rollback"),
    path("training-runs/<id:run_id>/", views.TrainingRunDetailView.as_view(), name="api-training-run"),
    # An image's explanation (modeling/api/analyses.py).
    path("images/<id:image_id>/explanation/", analyses.ExplanationView.as_view(), name="api-image-explanation"),
    path("images/<id:image_id>/explanation.png", analyses.ExplanationPngView.as_view(),
         name="api-image-explanation-png"),
    path("projects/<slug:slug>/", include(project_routes)),
]
