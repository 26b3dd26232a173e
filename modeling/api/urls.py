"""Routes of the model-loop API, mounted under /api/v1/ by config/api_urls.py."""
from django.urls import path

from modeling.api import views

urlpatterns = [
    path("projects/<slug:slug>/model-versions/", views.ModelVersionListView.as_view(), name="api-model-versions"),
    path("projects/<slug:slug>/retrain/", views.RetrainView.as_view(), name="api-retrain"),
    path("projects/<slug:slug>/training-runs/", views.TrainingRunListView.as_view(), name="api-training-runs"),
    path("projects/<slug:slug>/promotions/", views.PromotionListView.as_view(), name="api-promotions"),
    path("model-versions/<int:version_id>/", views.ModelVersionDetailView.as_view(), name="api-model-version"),
    path("model-versions/<int:version_id>/promote/", views.PromoteView.as_view(), name="api-model-version-promote"),
    path("model-versions/<int:version_id>/rollback/", views.RollbackView.as_view(), name="api-model-version-rollback"),
    path("training-runs/<int:run_id>/", views.TrainingRunDetailView.as_view(), name="api-training-run"),
]

# Dashboards (modeling/api/agreement.py): the stored agreement report, and a rater's exclusion from training.
from modeling.api import agreement as agreement_api  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/agreement/", agreement_api.AgreementView.as_view(), name="api-agreement"),
    path("projects/<slug:slug>/raters/<int:user_id>/exclusion/", agreement_api.RaterExclusionView.as_view(),
         name="api-rater-exclusion"),
]

# The poster's analyses (modeling/api/analyses.py): per-tag scores, metadata fields, explanations.
from modeling.api import analyses as analyses_api  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/tags/summary/", analyses_api.TagSummaryView.as_view(), name="api-tag-summary"),
    path("projects/<slug:slug>/metadata/fields/", analyses_api.MetadataFieldsView.as_view(), name="api-metadata-fields"),
    path("projects/<slug:slug>/metadata/<str:field>/summary/", analyses_api.MetadataSummaryView.as_view(),
         name="api-metadata-summary"),
    path("images/<int:image_id>/explanation/", analyses_api.ExplanationView.as_view(), name="api-image-explanation"),
    path("images/<int:image_id>/explanation.png", analyses_api.ExplanationPngView.as_view(),
         name="api-image-explanation-png"),
]

# Streamed export of the model versions and their metrics (modeling/api/version_exports.py).
from modeling.api import version_exports  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/export/model-versions/", version_exports.ModelVersionsExportView.as_view(),
         name="api-export-model-versions"),
]

# The image browser (modeling/api/image_browser.py).
from modeling.api import image_browser as image_browser_api  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/images/browse/", image_browser_api.ImageBrowseView.as_view(), name="api-image-browse"),
    path("projects/<slug:slug>/images/<int:image_id>/comparisons/", image_browser_api.ImageComparisonsView.as_view(),
         name="api-image-comparisons"),
]
