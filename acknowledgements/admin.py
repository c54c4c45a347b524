from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Acknowledgement, Audience, LedgerEntry, Policy, PolicyRevision, Receipt, User


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
