"""Routes of the labelling API, mounted under /api/v1/ by config/api_urls.py."""
from django.urls import include, path

from labeling.api import comparisons, data_exports, gold_pairs, images, judgment_imports, pairs, preference_exports, projects
from labeling.api import tokens
from labeling.api import import_jobs as import_jobs_api
from labeling.api import instructions as instructions_api
from labeling.api import qualification as qualification_api
from labeling.api import vocabulary as vocabulary_api
from labeling.api import webhooks as webhooks_api

# The routes of one project, under projects/<slug>/.
project_routes = [
    path("", projects.ProjectDetailView.as_view(), name="api-project"),
    path("next-pair/", pairs.NextPairView.as_view(), name="api-next-pair"),
    path("comparisons/", comparisons.ComparisonListView.as_view(), name="api-comparisons"),
    path("comparisons/undo/", comparisons.UndoView.as_view(), name="api-undo"),
    path("skip/", pairs.SkipView.as_view(), name="api-skip"),
    path("release/", pairs.ReleaseView.as_view(), name="api-release"),
    path("images/", images.ImageListView.as_view(), name="api-images"),
    path("tags/", vocabulary_api.VocabularyView.as_view(), name="api-vocabulary"),
    path("gold-pairs/", gold_pairs.GoldPairListView.as_view(), name="api-gold-pairs"),
    path("progress/", projects.ProgressView.as_view(), name="api-progress"),
    path("instructions/", instructions_api.InstructionsView.as_view(), name="api-instructions"),
    path("raters/<id:user_id>/reinstate/", qualification_api.RaterReinstateView.as_view(), name="api-rater-reinstate"),
    # Streamed exports of the raw data (labeling/api/data_exports.py).
    path("export/comparisons/", data_exports.ComparisonsExportView.as_view(), name="api-export-comparisons"),
    path("export/image-tags/", data_exports.ImageTagsExportView.as_view(), name="api-export-image-tags"),
    path("export/raters/", data_exports.RatersExportView.as_view(), name="api-export-raters"),
    path("export/preferences/", preference_exports.PreferencesExportView.as_view(), name="api-export-preferences"),
    # Bulk import jobs (labeling/api/import_jobs.py).
    path("imports/", import_jobs_api.ImportJobListView.as_view(), name="api-import-jobs"),
    path("imports/<id:job_id>/", import_jobs_api.ImportJobDetailView.as_view(), name="api-import-job"),
    path("imports/<id:job_id>/resume/", import_jobs_api.ImportJobResumeView.as_view(), name="api-import-job-resume"),
    # Import of judgments made elsewhere (labeling/api/judgment_imports.py).
    path("comparisons/import/", judgment_imports.JudgmentImportView.as_view(), name="api-comparisons-import"),
    # Vocabulary curation (labeling/api/vocabulary.py).
    path("vocabulary/", vocabulary_api.VocabularyCreateView.as_view(), name="api-vocabulary-create"),
    path("vocabulary/<id:tag_id>/", vocabulary_api.VocabularyTagView.as_view(), name="api-vocabulary-tag"),
    path("vocabulary/<id:tag_id>/merge/", vocabulary_api.VocabularyMergeView.as_view(), name="api-vocabulary-merge"),
    # Webhooks (labeling/api/webhooks.py).
    path("webhooks/", webhooks_api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<id:hook_id>/", webhooks_api.WebhookDetailView.as_view(), name="api-webhook"),
    path("webhooks/<id:hook_id>/deliveries/", webhooks_api.WebhookDeliveriesView.as_view(),
         name="api-webhook-deliveries"),
]

urlpatterns = [
    path("auth/token/", tokens.TokenView.as_view(), name="api-token"),
    path("auth/token/revoke/", tokens.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("projects/", projects.ProjectListView.as_view(), name="api-projects"),
    path("images/<id:image_id>/tags/", images.ImageTagsView.as_view(), name="api-image-tags"),
    path("projects/<slug:slug>/", include(project_routes)),
]
