"""The admin: superusers only (config/site_admin.py). Judgments are never edited here, and an image's files and
project are what the importer stored: the admin shows them and changes only descriptive fields."""
from django.contrib import admin

from labeling.services import archive

from labeling.models import (
    Comparison,
    GoldPair,
    Image,
    ImageStats,
    ImageTag,
    Invite,
    Membership,
    PairCandidate,
    PairLease,
    Project,
    RaterEvent,
    ReferenceRating,
    Tag,
)


class KeepsJudgments:
    """Admin for objects that carry comparisons: no delete, no bulk delete (archive instead; purging is
    ``manage.py purge_project``, which exports first and logs what it removed)."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnly:
    """Shown, never added or changed here (not even by a superuser)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(KeepsJudgments, admin.ModelAdmin):
    list_display = ["name", "slug", "tag_vocabulary", "overlap", "gold_rate", "allow_ties", "pair_strategy", "created_at",
                    "archived_at"]
    list_filter = ["tag_vocabulary", "allow_ties", "pair_strategy", ("archived_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["archived_at"]
    actions = ["archive_selected", "restore_selected"]

    @admin.action(description="Archive the selected projects (their judgments are kept)")
    def archive_selected(self, request, queryset):
        for project in queryset:
            archive.archive_project(project)
        self.message_user(request, f"Archived {queryset.count()} project(s).")

    @admin.action(description="Restore the selected projects")
    def restore_selected(self, request, queryset):
        for project in queryset:
            archive.restore_project(project)
        self.message_user(request, f"Restored {queryset.count()} project(s).")
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "is_active", "excluded_from_training", "joined_at"]
    list_filter = ["role", "is_active", "excluded_from_training", "project"]
    search_fields = ["user__username", "project__slug"]


class ImageTagInline(admin.TabularInline):
    model = ImageTag
    extra = 0
    raw_id_fields = ["tag", "rater"]


def per_project(images, change) -> int:
    """Apply ``change(project, image_ids)`` to a selection of images, one project at a time (the archive
    service works per project); returns the total it reports."""
    return sum(
        change(project, images.filter(project=project).values_list("pk", flat=True))
        for project in Project.objects.filter(pk__in=images.values_list("project_id", flat=True))
    )


@admin.register(Image)
class ImageAdmin(KeepsJudgments, admin.ModelAdmin):
    list_display = ["id", "original_name", "project", "width", "height", "external_id", "created_at", "archived_at"]
    list_filter = ["project", ("archived_at", admin.EmptyFieldListFilter)]
    search_fields = ["original_name", "external_id", "sha256", "caption"]
    # The files and the project are the importer's: a file set here would skip its checks (type, size, pixels).
    readonly_fields = ["project", "file", "thumbnail", "sha256", "width", "height", "created_at", "archived_at"]

    def has_add_permission(self, request):
        return False  # images come in through the importer (pages, API, import_images)
    actions = ["archive_selected", "restore_selected"]

    @admin.action(description="Archive the selected images (their judgments are kept)")
    def archive_selected(self, request, queryset):
        self.message_user(request, f"Archived {per_project(queryset, archive.archive_images)} image(s).")

    @admin.action(description="Restore the selected images")
    def restore_selected(self, request, queryset):
        self.message_user(request, f"Restored {per_project(queryset, archive.restore_images)} image(s).")
    inlines = [ImageTagInline]
    list_select_related = ["project"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]
    search_fields = ["name"]


@admin.register(ImageTag)
class ImageTagAdmin(admin.ModelAdmin):
    list_display = ["image", "tag", "source", "rater", "created_at"]
    list_filter = ["source", "tag__project"]
    raw_id_fields = ["image", "tag", "rater"]


@admin.register(ReferenceRating)
class ReferenceRatingAdmin(admin.ModelAdmin):
    list_display = ["image", "mean", "std", "source"]
    raw_id_fields = ["image"]
    list_filter = ["source"]


@admin.register(Comparison)
class ComparisonAdmin(ReadOnly, KeepsJudgments, admin.ModelAdmin):
    list_display = ["id", "project", "image_a", "image_b", "outcome", "rater", "response_ms", "is_gold", "created_at"]
    list_filter = ["project", "outcome", "is_gold", "rater"]
    raw_id_fields = ["image_a", "image_b", "rater"]
    date_hierarchy = "created_at"


# --- Pair serving (rating loop) ------------------------------------------------------------------


@admin.register(PairCandidate)
class PairCandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "image_low", "image_high", "priority", "source", "judgments", "is_open", "full_until"]
    list_filter = ["project", "source", "is_open"]
    raw_id_fields = ["image_low", "image_high"]


@admin.register(PairLease)
class PairLeaseAdmin(admin.ModelAdmin):
    list_display = ["token", "project", "rater", "image_a", "image_b", "state", "created_at", "expires_at"]
    list_filter = ["project", "state"]
    raw_id_fields = ["candidate", "gold", "image_a", "image_b", "rater"]
    readonly_fields = ["comparison"]  # the judgment it led to is set by the rating service only
    search_fields = ["token", "rater__username"]


@admin.register(GoldPair)
class GoldPairAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "image_a", "image_b", "expected", "is_active", "created_at"]
    list_filter = ["project", "is_active", "expected"]
    raw_id_fields = ["image_a", "image_b"]


@admin.register(RaterEvent)
class RaterEventAdmin(ReadOnly, admin.ModelAdmin):
    """The record of raters' standing: qualification, pauses, reinstatements (written by the app only)."""

    list_display = ["created_at", "project", "user", "kind", "reason", "by"]
    list_filter = ["project", "kind"]
    raw_id_fields = ["user", "by"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["project", "role", "note", "uses", "max_uses", "expires_at", "is_active", "created_at"]
    list_filter = ["project", "role", "is_active"]
    readonly_fields = ["token"]


@admin.register(ImageStats)
class ImageStatsAdmin(admin.ModelAdmin):
    list_display = ["image", "project", "comparison_count"]
    list_filter = ["project"]
    raw_id_fields = ["image"]
