"""The Django admin, for superusers. A change with a ledger meaning goes through the same audited
action as the portal's own pages; evidence is shown and never edited."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from acknowledgements.models import (
    Acknowledgement,
    Audience,
    LedgerEntry,
    Policy,
    PolicyRevision,
    Receipt,
    User,
)
from acknowledgements.people import actions as people_actions


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff"]
    list_filter = ["audiences", "groups", "is_active", "is_staff"]
    search_fields = ["email", "full_name"]
    filter_horizontal = ["audiences", "groups", "user_permissions"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Person", {"fields": ["full_name", "preferred_language", "audiences"]}),
        (
            "Access",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]}),
    ]

    def save_related(self, request, form, formsets, change) -> None:
        # Audiences decide who must sign what: set them through the audited action, not the
        # form's plain many-to-many save, so the change leaves its ledger row.
        audiences = form.cleaned_data.pop("audiences", None)
        super().save_related(request, form, formsets, change)
        if audiences is not None:
            people_actions.set_person_audiences(
                actor=request.user, person=form.instance, audiences=list(audiences)
            )


admin.site.register(Audience)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence is append-only: the admin shows it and never edits or deletes it."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "owner"]


@admin.register(PolicyRevision)
class PolicyRevisionAdmin(ReadOnlyAdmin):
    list_display = ["policy", "version", "status", "change", "effective_at", "published_at"]
    list_filter = ["policy", "status", "change"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "kind", "person", "revision", "recorded_at"]
    list_filter = ["kind"]
    search_fields = ["person__email", "row_hash"]


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadOnlyAdmin):
    list_display = ["receipt_number", "person", "revision", "signed_at"]
    search_fields = ["receipt_number", "person__email"]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["acknowledgement", "sha256", "issued_at"]
