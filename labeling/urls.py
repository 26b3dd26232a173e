from django.urls import include, path

from labeling import views
from labeling import import_views
from labeling import crowd_views
from labeling import instruction_views
from labeling import qualification_views
from labeling import vocabulary_views
from labeling import webhook_views


# The routes of one project, under projects/<slug>/.
project_routes = [
    path("", views.project_detail, name="project-detail"),
    path("rate/", views.rate, name="project-rate"),
    path("settings/", views.project_edit, name="project-edit"),
    path("upload/", views.project_upload, name="project-upload"),
    path("raters/", views.project_raters, name="project-raters"),
    path("raters/<id:membership_id>/", views.membership_toggle, name="membership-toggle"),
    path("raters/<id:membership_id>/reinstate/", qualification_views.rater_reinstate, name="rater-reinstate"),
    path("invites/<id:invite_id>/revoke/", views.invite_revoke, name="invite-revoke"),
    path("progress/", views.project_progress_page, name="project-progress"),
    path("gold/", views.project_gold, name="project-gold"),
    # Campaign links for crowd platforms (labeling/crowd_views.py).
    path("campaign-links/", crowd_views.campaign_links_page, name="project-campaign-links"),
    path("campaign-links/<id:link_id>/close/", crowd_views.campaign_link_close, name="project-campaign-link-close"),
    # Instructions and example pairs (labeling/instruction_views.py).
    path("instructions/", instruction_views.instructions_page, name="project-instructions"),
    path("instructions/examples/<id:example_id>/delete/", instruction_views.example_delete,
         name="project-example-delete"),
    # Bulk import jobs (labeling/import_views.py).
    path("imports/", import_views.project_imports, name="project-imports"),
    path("imports/<id:job_id>/", import_views.import_job_page, name="project-import-job"),
    path("imports/<id:job_id>/resume/", import_views.import_job_resume, name="project-import-job-resume"),
    # Vocabulary curation (labeling/vocabulary_views.py).
    path("vocabulary/", vocabulary_views.vocabulary_page, name="project-vocabulary"),
    path("vocabulary/<id:tag_id>/rename/", vocabulary_views.tag_rename, name="project-tag-rename"),
    path("vocabulary/<id:tag_id>/merge/", vocabulary_views.tag_merge, name="project-tag-merge"),
    path("vocabulary/<id:tag_id>/delete/", vocabulary_views.tag_delete, name="project-tag-delete"),
    # Webhooks (labeling/webhook_views.py).
    path("webhooks/", webhook_views.webhooks_page, name="project-webhooks"),
    path("webhooks/<id:hook_id>/delete/", webhook_views.webhook_delete, name="project-webhook-delete"),
]

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),  # before the slug "new"
    path("projects/<slug:slug>/", include(project_routes)),
    path("signup/<str:token>/", views.signup, name="signup"),
    path("study/<str:token>/", crowd_views.open_campaign_link, name="crowd-link"),
]
