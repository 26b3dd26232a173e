from django.urls import path, register_converter

from labeling import views
from labeling import import_views
from labeling import vocabulary_views
from labeling import webhook_views


class DatabaseIdConverter:
    """Like <int:…>, but only numbers a database id can be (larger ones would overflow the driver: a 500)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


register_converter(DatabaseIdConverter, "id")

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/rate/", views.rate, name="project-rate"),
    path("projects/<slug:slug>/settings/", views.project_edit, name="project-edit"),
    path("projects/<slug:slug>/upload/", views.project_upload, name="project-upload"),
    path("projects/<slug:slug>/raters/", views.project_raters, name="project-raters"),
    path("projects/<slug:slug>/raters/<id:membership_id>/", views.membership_toggle, name="membership-toggle"),
    path("projects/<slug:slug>/invites/<id:invite_id>/revoke/", views.invite_revoke, name="invite-revoke"),
    path("projects/<slug:slug>/progress/", views.project_progress_page, name="project-progress"),
    path("projects/<slug:slug>/gold/", views.project_gold, name="project-gold"),
    path("signup/<str:token>/", views.signup, name="signup"),
    # Bulk import jobs (labeling/import_views.py).
    path("projects/<slug:slug>/imports/", import_views.project_imports, name="project-imports"),
    path("projects/<slug:slug>/imports/<id:job_id>/", import_views.import_job_page, name="project-import-job"),
    path("projects/<slug:slug>/imports/<id:job_id>/resume/", import_views.import_job_resume,
         name="project-import-job-resume"),
    # Vocabulary curation (labeling/vocabulary_views.py).
    path("projects/<slug:slug>/vocabulary/", vocabulary_views.vocabulary_page, name="project-vocabulary"),
    path("projects/<slug:slug>/vocabulary/<id:tag_id>/rename/", vocabulary_views.tag_rename, name="project-tag-rename"),
    path("projects/<slug:slug>/vocabulary/<id:tag_id>/merge/", vocabulary_views.tag_merge, name="project-tag-merge"),
    path("projects/<slug:slug>/vocabulary/<id:tag_id>/delete/", vocabulary_views.tag_delete, name="project-tag-delete"),
    # Webhooks (labeling/webhook_views.py).
    path("projects/<slug:slug>/webhooks/", webhook_views.webhooks_page, name="project-webhooks"),
    path("projects/<slug:slug>/webhooks/<id:hook_id>/delete/", webhook_views.webhook_delete,
         name="project-webhook-delete"),
]
