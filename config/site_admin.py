"""Django's admin, for superusers only.

The admin edits rows, not projects: a model permission there spans every project, so it cannot honour
the access layer's per-project roles. It is therefore site staff's tool alone (``access.is_site_staff``,
the same test that lets a superuser into every project); managers run their projects from Tagrank's
pages and API, where ``labeling/access.py`` decides. The ``is_staff`` flag opens no part of it.
"""
from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig


class SuperuserAdminSite(AdminSite):
    site_header = "Tagrank administration (superusers)"

    def has_permission(self, request):
        from labeling import access  # not at import: this module is loaded with the settings, before the models

        return request.user.is_active and access.is_site_staff(request.user)


class SiteAdminConfig(AdminConfig):
    """``django.contrib.admin`` with :class:`SuperuserAdminSite` as ``admin.site``."""

    default_site = "config.site_admin.SuperuserAdminSite"
