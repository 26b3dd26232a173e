"""The human side of Tagrank: projects, their images and tags, and the comparisons raters make.

One module per aggregate; everything is re-exported here, so ``from labeling.models import X`` is the one
way to import a model (and the path the migrations use):

- ``project``: ``Project``, what raters judge and how;
- ``membership``: members and their standing, invitations, crowd links and crowd workers;
- ``catalogue``: images, tags, imported reference ratings;
- ``judgments``: comparisons, their criteria answers, and the counters kept from them;
- ``serving``: the pair queue, gold and example pairs, leases;
- ``bulk_imports``: import jobs run on the worker;
- ``webhook_subscriptions``: webhooks and their deliveries.
"""
from labeling.models.bulk_imports import ImportJob, ImportJobIssue
from labeling.models.catalogue import (
    IMAGE_EXTENSIONS,
    SCORE_BINS,
    Image,
    ImageTag,
    ReferenceRating,
    Tag,
    distribution_mean_std,
    image_upload_path,
    thumbnail_upload_path,
)
from labeling.models.judgments import (
    CRITERION_KEY_VALIDATOR,
    MAX_CRITERIA,
    Comparison,
    CriterionAnswer,
    ImageStats,
    RaterDayCount,
    primary_criterion,
)
from labeling.models.membership import CampaignLink, CrowdWorker, Invite, Membership, RaterEvent
from labeling.models.project import GROUP_KEY_VALIDATOR, Project
from labeling.models.serving import GOLD_ANSWERS, ExamplePair, GoldPair, PairCandidate, PairLease
from labeling.models.webhook_subscriptions import Webhook, WebhookDelivery

__all__ = [
    "CRITERION_KEY_VALIDATOR", "GOLD_ANSWERS", "GROUP_KEY_VALIDATOR", "IMAGE_EXTENSIONS", "MAX_CRITERIA", "SCORE_BINS",
    "CampaignLink", "Comparison", "CriterionAnswer", "CrowdWorker", "ExamplePair", "GoldPair", "Image",
    "ImageStats", "ImageTag", "ImportJob", "ImportJobIssue", "Invite", "Membership", "PairCandidate", "PairLease",
    "Project", "RaterDayCount", "RaterEvent", "ReferenceRating", "Tag", "Webhook", "WebhookDelivery",
    "distribution_mean_std", "image_upload_path", "primary_criterion", "thumbnail_upload_path",
]
