"""The Django admin, for superusers. A change with a ledger meaning goes through the same audited
action as the portal's own pages; evidence is shown and never edited."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from acknowledgements.models import (
    Acknowledgement,
    Audience,
    LedgerEntry,
    Policy,
    PolicyRevision,
    Receipt,
    User,
)
from acknowledgements.people import access
from acknowledgements.people import actions as people_actions

# The account flags that are roles (staff, superuser).
FLAGS = tuple(access.ROLE_FLAGS.values())


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """People. Audiences, roles (groups, staff, superuser) and leaving go through the audited
    actions; per-person permissions are not offered: power is given by roles only."""

    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff"]
    list_filter = ["audiences", "groups", "is_active", "is_staff"]
    search_fields = ["email", "full_name"]
    filter_horizontal = ["audiences", "groups"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Person", {"fields": ["full_name", "preferred_language", "audiences"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]}),
    ]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "groups":  # the role groups only: any other would be unaudited power
            kwargs["queryset"] = Group.objects.filter(name__in=access.ROLE_GROUPS.values())
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        # The account flags with a ledger meaning are kept as stored here and changed after
        # the save through their actions (save_related), which audit them.
        form.wanted_flags = {flag: getattr(obj, flag) for flag in ("is_active", *FLAGS)}
        stored = User.objects.filter(pk=obj.pk).values(*form.wanted_flags).first() if change else {}
        for flag in form.wanted_flags:
            setattr(obj, flag, stored.get(flag, flag == "is_active"))
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        # Audiences decide who must sign what, groups who holds power: both are set through
        # the audited actions, not the form's plain many-to-many save.
        audiences = form.cleaned_data.pop("audiences", None)
        groups = form.cleaned_data.pop("groups", None)
        super().save_related(request, form, formsets, change)
        person, wanted = form.instance, form.wanted_flags
        if audiences is not None:
            people_actions.set_person_audiences(
                actor=request.user, person=person, audiences=list(audiences)
            )
        roles = {role for role, flag in access.ROLE_FLAGS.items() if wanted[flag]}
        if groups is not None:
            names = {group.name for group in groups}
            roles |= {role for role, name in access.ROLE_GROUPS.items() if name in names}
        else:
            roles |= access.roles_of(person) & set(access.ROLE_GROUPS)
        access.set_roles(actor=request.user, person=person, roles=roles)
        if wanted["is_active"]:
            people_actions.reactivate_person(actor=request.user, person=person)
        else:
            people_actions.deactivate_person(actor=request.user, person=person)


admin.site.register(Audience)


admin.site.unregister(Group)


@admin.register(Group)
class RoleGroupAdmin(BaseGroupAdmin):
    """Groups are the roles, and a role's permissions are defined by the code (roles.py) and
    its migrations: the admin shows them and never changes them, which would give or take
    power with no ledger row. Who holds a role is changed on the person, audited."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
