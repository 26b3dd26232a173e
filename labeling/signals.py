"""The labeling app's signal receivers, connected once by ``LabelingConfig.ready``.

- An image or comparison saved through the ORM, one at a time, is counted by the counters' owner
  (``labeling.services.image_stats``, which lists the other paths). There is deliberately no ``post_delete``
  receiver for comparisons: it would stop Django from fast-deleting them when a project or image is deleted.
  The one place the app deletes a comparison (undo) tells the owner itself; anything else that deletes
  comparisons should call ``recount_image_stats``.
- Deactivation revokes API tokens, whichever way it happens (manager page, admin, shell).
- A new password ends the API tokens too (as it ends Django's sessions), whichever way it is set: the password
  change page, the admin, ``changepassword``, a shell. A token stolen with the old password stops working.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save, pre_save

from labeling.models import Comparison, Image, Membership
from labeling.services.api_tokens import revoke_if_no_active_membership, revoke_tokens
from labeling.services import image_stats


def create_image_stats(sender, instance: Image, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        image_stats.images_added(instance.project_id, [instance.pk])


def count_new_comparison(sender, instance: Comparison, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        image_stats.comparison_stored(instance)


def revoke_tokens_of_deactivated_member(sender, instance: Membership, raw: bool = False, **kwargs):
    if not raw and not instance.is_active:
        revoke_if_no_active_membership(instance.user)


def revoke_tokens_of_deactivated_user(sender, instance, raw: bool = False, **kwargs):
    if not raw and not instance.is_active:
        revoke_tokens(instance)


def revoke_tokens_on_password_change(sender, instance, raw: bool = False, update_fields=None, **kwargs):
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = type(instance).objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        revoke_tokens(instance)


def connect() -> None:
    post_save.connect(create_image_stats, sender=Image, dispatch_uid="imagestats_for_new_image")
    post_save.connect(count_new_comparison, sender=Comparison, dispatch_uid="imagestats_count_comparison")
    post_save.connect(revoke_tokens_of_deactivated_member, sender=Membership,
                      dispatch_uid="revoke_tokens_of_deactivated_member")
    post_save.connect(revoke_tokens_of_deactivated_user, sender=settings.AUTH_USER_MODEL,
                      dispatch_uid="revoke_tokens_of_deactivated_user")
    pre_save.connect(revoke_tokens_on_password_change, sender=settings.AUTH_USER_MODEL,
                     dispatch_uid="revoke_tokens_on_password_change")
