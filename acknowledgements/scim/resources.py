"""People and audiences as SCIM resources, what a SCIM user asks of a person, and the service's
self-description (its schemas, resource types and capabilities)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Email,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    GroupMember,
    GroupMembership,
    Manager,
    Meta,
    Name,
    Patch,
    Reference,
    Required,
    ResourceType,
    Schema,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)

from acknowledgements.models import Audience
from acknowledgements.models import User as Person

CONTENT_TYPE = "application/scim+json"
ENTERPRISE = str(EnterpriseUser.__schema__)
MAX_RESULTS = 200  # the largest page a list answers, whatever `count` asks

# A SCIM user as the portal serves it: the core schema with the enterprise extension.
UserResource = User[EnterpriseUser]

# How much the directories' payloads may depart from the RFCs: attributes the portal does not
# keep (phone numbers, addresses...) are ignored rather than refused, a `remove` carrying a
# `value` removes those values and an `add` to `emails[type eq "work"].value` creates the
# entry, as Microsoft Entra ID sends them.
POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.ignore,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

# The attributes the portal keeps, per schema (sub-attributes: None keeps them all). The
# published schemas list these only, so a client knows what a round trip preserves: a given
# and a family name are read (joined into the full name) but not kept apart.
KEPT_ATTRIBUTES: dict[str, dict[str, set[str] | None]] = {
    str(User.__schema__): {
        "userName": None,
        "name": {"formatted"},
        "displayName": None,
        "active": None,
        "emails": {"value", "type", "primary"},
        "groups": None,
    },
    ENTERPRISE: {"employeeNumber": None, "manager": None},
    str(Group.__schema__): {"displayName": None, "members": {"value", "$ref", "type"}},
}
# Every person has a name, an address (their one email) and is active or not: the published
# schema says so, and a PATCH cannot remove them.
REQUIRED_ATTRIBUTES = {"name", "displayName", "active", "emails"}


def user_resource(person: Person, *, base_url: str) -> UserResource:
    """A person as a SCIM user: userName and the work email are their address."""
    user = UserResource(
        id=str(person.pk),
        external_id=person.external_id,
        user_name=person.email,
        name=Name(formatted=person.full_name) if person.full_name else None,
        display_name=person.full_name or None,
        active=person.is_active,
        emails=[Email(value=person.email, type=Email.Type.work, primary=True)],
        groups=[
            GroupMembership(
                value=str(a.pk),
                display=a.name,
                type="direct",
                ref=Reference(f"{base_url}/Groups/{a.pk}"),
            )
            for a in person.audiences.all()
        ]
        or None,
        meta=Meta(
            resource_type="User",
            created=person.date_joined,
            location=f"{base_url}/Users/{person.pk}",
        ),
    )
    manager = person.manager
    if person.employee_number or manager:
        user[EnterpriseUser] = EnterpriseUser(
            employee_number=person.employee_number or None,
            manager=Manager(value=str(manager.pk), ref=Reference(f"{base_url}/Users/{manager.pk}"))
            if manager
            else None,
        )
    return user


def group_resource(
    audience: Audience, *, base_url: str, members: list[Person] | None = None
) -> Group:
    """An audience as a SCIM group; its members only when they are asked for."""
    return Group(
        id=str(audience.pk),
        display_name=audience.name,
        members=[
            GroupMember(
                value=str(person.pk), type="User", ref=Reference(f"{base_url}/Users/{person.pk}")
            )
            for person in members
        ]
        if members
        else None,
        meta=Meta(resource_type="Group", location=f"{base_url}/Groups/{audience.pk}"),
    )


def scim_id(value: Any) -> int | None:
    """The primary key a SCIM id names, None when it names none the portal could have."""
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


@dataclass(frozen=True)
class PersonFields:
    """What a SCIM user says of a person, in the portal's fields."""

    email: str
    full_name: str | None  # None: the request names nobody (keep the name as it is)
    external_id: str | None
    active: bool | None
    employee_number: str
    manager_id: str | None


def _joined_name(name: Name | None) -> str | None:
    if name is None:
        return None
    if name.formatted:
        return name.formatted
    parts = [part for part in (name.given_name, name.family_name) if part]
    return " ".join(parts) or None


def _work_email(user: UserResource) -> str | None:
    emails = user.emails or []
    chosen = next((e for e in emails if str(e.type or "").lower() == "work"), None)
    chosen = chosen or next((e for e in emails if e.primary), None)
    return chosen.value if chosen else None


def person_fields(user: UserResource, *, before: UserResource | None = None) -> PersonFields:
    """The portal's fields from a SCIM user. After a PATCH, `before` is the user as it was, so
    that the name comes from whichever of displayName, name.formatted or the given and family
    names the patch changed."""
    if before is None:
        full_name = user.display_name or _joined_name(user.name)
    elif user.display_name != before.display_name:
        full_name = user.display_name
    elif user.name != before.name:
        full_name = _joined_name(user.name)
    else:
        full_name = None
    email = user.user_name or ""
    if before is not None and email == before.user_name:
        # userName and the work email are one value, the address: a patch may change either.
        work = _work_email(user)
        if work and work != _work_email(before):
            email = work
    enterprise = user[EnterpriseUser]
    manager = enterprise.manager if enterprise else None
    return PersonFields(
        email=email,
        full_name=full_name,
        external_id=user.external_id or None,
        active=user.active,
        employee_number=(enterprise.employee_number or "") if enterprise else "",
        manager_id=manager.value if manager and manager.value else None,
    )


def _manager_with_ref(manager: Any, base_url: str) -> Any:
    """RFC 7643 §4.3 marks the manager's `$ref` required, which no directory sends: the
    portal derives it from the manager's id."""
    if isinstance(manager, dict) and manager.get("value") and not manager.get("$ref"):
        return {**manager, "$ref": f"{base_url}/Users/{manager['value']}"}
    return manager


def with_manager_ref(body: Any, base_url: str) -> Any:
    """A user's body (POST, PUT) with its manager's `$ref` filled in."""
    if not isinstance(body, dict):
        return body
    for key, extension in body.items():
        if key.lower() == ENTERPRISE.lower() and isinstance(extension, dict):
            for name, manager in extension.items():
                if name.lower() == "manager":
                    extension = {**extension, name: _manager_with_ref(manager, base_url)}
            return {**body, key: extension}
    return body


def entra_compatible_patch(body: Any, base_url: str) -> Any:
    """A PATCH body with the enterprise manager in the form RFC 7643 gives it: Microsoft Entra
    ID sends the manager's id as a bare string (`"value": "<id>"`), and an empty one to
    remove it."""
    if not isinstance(body, dict):
        return body
    operations = body.get("Operations")
    if not isinstance(operations, list):
        return body
    fixed = []
    for operation in operations:
        if (
            isinstance(operation, dict)
            and str(operation.get("path", "")).lower() == f"{ENTERPRISE}:manager".lower()
            and isinstance(operation.get("value"), str)
        ):
            value = operation["value"].strip()
            operation = (
                {**operation, "value": {"value": value}}
                if value
                else {"op": "remove", "path": operation["path"]}
            )
        if isinstance(operation, dict) and isinstance(operation.get("value"), dict):
            path = str(operation.get("path", "")).lower()
            value = operation["value"]
            if path == f"{ENTERPRISE}:manager".lower():
                value = _manager_with_ref(value, base_url)
            elif not path:
                value = with_manager_ref(value, base_url)
            operation = {**operation, "value": value}
        fixed.append(operation)
    return {**body, "Operations": fixed}


# --- The service's self-description (RFC 7644 §4) ------------------------------------------


def _kept(schema: Schema) -> Schema:
    kept = KEPT_ATTRIBUTES[str(schema.id)]
    attributes = []
    for attribute in schema.attributes or []:
        if attribute.name not in kept:
            continue
        subs = kept[attribute.name]
        if subs is not None and attribute.sub_attributes:
            attribute = attribute.model_copy(
                update={"sub_attributes": [s for s in attribute.sub_attributes if s.name in subs]}
            )
        if schema.id == str(User.__schema__) and attribute.name in REQUIRED_ATTRIBUTES:
            attribute = attribute.model_copy(update={"required": Required.true})
        attributes.append(attribute)
    return schema.model_copy(update={"attributes": attributes})


def provider(base_url: str) -> ScimProvider:
    """The SCIM service the portal is: users with the enterprise extension, groups."""
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A token an administrator creates at /manage/integrations/.",
                primary=True,
            )
        ],
        meta=Meta(
            resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"
        ),
    )
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[
            ResourceType.from_resource(UserResource),
            ResourceType.from_resource(Group),
        ],
        config=config,
    )


def schemas(base_url: str) -> list[Schema]:
    return [
        _kept(schema).model_copy(
            update={
                "meta": Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")
            }
        )
        for schema in provider(base_url).schemas
        if str(schema.id) in KEPT_ATTRIBUTES
    ]


def resource_types(base_url: str) -> list[ResourceType]:
    return [
        resource_type.model_copy(
            update={
                "meta": Meta(
                    resource_type="ResourceType",
                    location=f"{base_url}/ResourceTypes/{resource_type.id}",
                )
            }
        )
        for resource_type in provider(base_url).resource_types
    ]


def service_provider_config(base_url: str) -> ServiceProviderConfig:
    config = provider(base_url).config
    assert config is not None
    return config


def dump(resource: Any, **parameters: Any) -> dict:
    """A resource or message as a response carries it."""
    return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, **parameters)
