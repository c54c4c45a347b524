"""The SCIM 2.0 service at /scim/v2/ (RFC 7644): the directory adds, changes and retires people
and their audiences. Each view checks the bearer token, parses the request with scim2-models,
calls one provisioning function and answers in application/scim+json.

Token-authenticated, never by session: the views are exempt from CSRF (no browser sends a
bearer token by itself), and refuse a request without a live token before reading anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    Group,
    InvalidSyntaxException,
    ListResponse,
    NotFoundException,
    NotImplementedException,
    PatchOp,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    SearchRequest,
    UnauthorizedException,
)

from acknowledgements.models import ApiToken, Audience
from acknowledgements.models import User as Person
from acknowledgements.scim import auth, filters, provisioning, resources
from acknowledgements.scim.resources import CONTENT_TYPE, POLICY, UserResource

DEFAULT_COUNT = 100


def _json(data: Any, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type=CONTENT_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _error(error: Error, **headers: str) -> HttpResponse:
    return _json(error.model_dump(), status=int(error.status or 400), **headers)


def scim_endpoint(*methods: str):
    """Token first, then the method; SCIM refusals and invalid payloads as SCIM errors."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token = auth.authenticate(request.headers.get("Authorization", ""))
            if token is None:
                refusal = UnauthorizedException(detail="A valid bearer token is required.")
                return _error(refusal.to_error(), WWW_Authenticate='Bearer realm="scim"')
            if request.method not in methods:
                return _error(
                    Error(status=405, detail=f"{request.method} is not allowed here."),
                    Allow=", ".join(methods),
                )
            try:
                with POLICY:
                    return view(request, token, *args, **kwargs)
            except SCIMException as refusal:
                return _error(refusal.to_error())
            except ValidationError as invalid:
                return _error(Error.from_validation_errors(invalid)[0])

        return wrapped

    return decorator


def _base_url(request: HttpRequest) -> str:
    config = reverse("acknowledgements:scim_service_provider_config")
    return request.build_absolute_uri(config).removesuffix("/ServiceProviderConfig")


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidSyntaxException(detail="The request body is not JSON.") from None
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="The request body is not a JSON object.")
    return body


def _parameters(request: HttpRequest, model: Any) -> ResponseParameters:
    return ResponseParameters[model].model_validate(
        {
            "attributes": request.GET.get("attributes") or None,
            "excludedAttributes": request.GET.get("excludedAttributes") or None,
        }
    )


_LIST_PARAMETERS = ("filter", "startIndex", "count", "attributes", "excludedAttributes")


def _search(request: HttpRequest, model: Any) -> SearchRequest:
    """A list request: from the query string (GET) or the body (POST to .search)."""
    if request.method == "POST":
        data = _body(request)
    else:
        data = {
            name: request.GET[name]
            for name in _LIST_PARAMETERS
            if request.GET.get(name, "").strip()
        }
    return SearchRequest[model].model_validate(data, scim_ctx=Context.SEARCH_REQUEST)


def _list(search: SearchRequest, model: Any, queryset, build) -> HttpResponse:
    start = search.start_index or 1
    count = DEFAULT_COUNT if search.count is None else search.count
    count = min(count, resources.MAX_RESULTS)
    total = queryset.count()
    found = list(queryset[start - 1 : start - 1 + count]) if count else []
    listed = ListResponse[model](
        total_results=total,
        start_index=start,
        items_per_page=len(found),
        resources=[build(item) for item in found] or None,
    )
    return _json(listed.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=search))


def _resource(
    request: HttpRequest, resource: Any, context: Context, status: int = 200
) -> HttpResponse:
    data = resource.model_dump(
        scim_ctx=context, response_parameters=_parameters(request, type(resource))
    )
    headers = {"Location": resource.meta.location} if status == 201 else {}
    return _json(data, status=status, **headers)


# --- Users ------------------------------------------------------------------------------------


def _people():
    return Person.objects.select_related("manager").prefetch_related("audiences").order_by("pk")


def _user(request: HttpRequest, person: Person) -> UserResource:
    person = _people().get(pk=person.pk)
    return resources.user_resource(person, base_url=_base_url(request))


def _list_users(request: HttpRequest) -> HttpResponse:
    search = _search(request, UserResource)
    people = _people()
    if search.filter:
        people = filters.filter_users(people, str(search.filter))
    base_url = _base_url(request)
    return _list(
        search,
        UserResource,
        people,
        lambda person: resources.user_resource(person, base_url=base_url),
    )


@scim_endpoint("POST")
def scim_users_search(request: HttpRequest, token: ApiToken) -> HttpResponse:
    return _list_users(request)


@scim_endpoint("GET", "POST")
def scim_users(request: HttpRequest, token: ApiToken) -> HttpResponse:
    if request.method == "POST":
        body = resources.with_manager_ref(_body(request), _base_url(request))
        user = UserResource.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        person = provisioning.create_user(token=token, user=user)
        return _resource(
            request, _user(request, person), Context.RESOURCE_CREATION_RESPONSE, status=201
        )
    return _list_users(request)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def scim_user(request: HttpRequest, token: ApiToken, scim_id: str) -> HttpResponse:
    if request.method == "GET":
        person = provisioning.person_by_id(scim_id)
        return _resource(request, _user(request, person), Context.RESOURCE_QUERY_RESPONSE)
    if request.method == "DELETE":
        provisioning.delete_user(token=token, person_id=scim_id)
        return HttpResponse(status=204)
    if request.method == "PUT":
        body = resources.with_manager_ref(_body(request), _base_url(request))
        user = UserResource.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        person = provisioning.replace_user(token=token, person_id=scim_id, user=user)
        return _resource(request, _user(request, person), Context.RESOURCE_REPLACEMENT_RESPONSE)
    patch = PatchOp[UserResource].model_validate(
        resources.entra_compatible_patch(_body(request), _base_url(request)),
        scim_ctx=Context.RESOURCE_PATCH_REQUEST,
    )
    person = provisioning.patch_user(
        token=token, person_id=scim_id, patch=patch, base_url=_base_url(request)
    )
    return _resource(request, _user(request, person), Context.RESOURCE_PATCH_RESPONSE)


# --- Groups -----------------------------------------------------------------------------------


def _wants_members(parameters: ResponseParameters) -> bool:
    """Whether a response carries the members: a large group's list is long."""
    asked = [str(p).lower() for p in parameters.attributes or []]
    excluded = [str(p).lower() for p in parameters.excluded_attributes or []]
    members = ("members", f"{str(Group.__schema__).lower()}:members")
    if any(name.split(".")[0] in members for name in excluded):
        return False
    return not asked or any(name.split(".")[0] in members for name in asked)


def _group(request: HttpRequest, audience: Audience) -> Group:
    wanted = _wants_members(_parameters(request, Group))
    members = list(audience.members.order_by("pk")) if wanted else None
    return resources.group_resource(audience, base_url=_base_url(request), members=members)


@scim_endpoint("GET", "POST")
def scim_groups(request: HttpRequest, token: ApiToken) -> HttpResponse:
    if request.method == "POST":
        group = Group.model_validate(_body(request), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        audience = provisioning.create_group(token=token, group=group)
        return _resource(
            request, _group(request, audience), Context.RESOURCE_CREATION_RESPONSE, status=201
        )
    return _list_groups(request)


def _list_groups(request: HttpRequest) -> HttpResponse:
    search = _search(request, Group)
    wants_members = _wants_members(search)
    audiences = Audience.objects.order_by("pk")
    if wants_members:
        audiences = audiences.prefetch_related("members")
    if search.filter:
        audiences = filters.filter_groups(audiences, str(search.filter))
    base_url = _base_url(request)
    return _list(
        search,
        Group,
        audiences,
        lambda audience: resources.group_resource(
            audience,
            base_url=base_url,
            members=sorted(audience.members.all(), key=lambda p: p.pk) if wants_members else None,
        ),
    )


@scim_endpoint("POST")
def scim_groups_search(request: HttpRequest, token: ApiToken) -> HttpResponse:
    return _list_groups(request)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def scim_group(request: HttpRequest, token: ApiToken, scim_id: str) -> HttpResponse:
    if request.method == "GET":
        audience = provisioning.audience_by_id(scim_id)
        return _resource(request, _group(request, audience), Context.RESOURCE_QUERY_RESPONSE)
    if request.method == "DELETE":
        provisioning.delete_group(token=token, audience_id=scim_id)
        return HttpResponse(status=204)
    if request.method == "PUT":
        group = Group.model_validate(_body(request), scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        audience = provisioning.replace_group(token=token, audience_id=scim_id, group=group)
        return _resource(request, _group(request, audience), Context.RESOURCE_REPLACEMENT_RESPONSE)
    patch = PatchOp[Group].model_validate(_body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    audience = provisioning.patch_group(token=token, audience_id=scim_id, patch=patch)
    return _resource(request, _group(request, audience), Context.RESOURCE_PATCH_RESPONSE)


# --- The service's self-description -----------------------------------------------------------


@scim_endpoint("GET")
def scim_service_provider_config(request: HttpRequest, token: ApiToken) -> HttpResponse:
    config = resources.service_provider_config(_base_url(request))
    return _json(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _described(request: HttpRequest, model: Any, items: list, wanted: str | None) -> HttpResponse:
    if wanted is not None:
        for item in items:
            if str(item.id) == wanted:
                return _json(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise NotFoundException(detail=f"Nothing is described as {wanted}.")
    listed = ListResponse[model](
        total_results=len(items), start_index=1, items_per_page=len(items), resources=items
    )
    return _json(listed.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@scim_endpoint("GET")
def scim_resource_types(
    request: HttpRequest, token: ApiToken, resource_type: str | None = None
) -> HttpResponse:
    items = resources.resource_types(_base_url(request))
    return _described(request, ResourceType, items, resource_type)


@scim_endpoint("GET")
def scim_schemas(
    request: HttpRequest, token: ApiToken, schema_id: str | None = None
) -> HttpResponse:
    return _described(request, Schema, resources.schemas(_base_url(request)), schema_id)


@scim_endpoint("POST")
def scim_search(request: HttpRequest, token: ApiToken) -> HttpResponse:
    # RFC 7644 §3.4.3 lets a client search users and groups at once from the root; the
    # directories search one resource type at a time, at /Users/.search and /Groups/.search.
    raise NotImplementedException(detail="Search /Users/.search or /Groups/.search instead.")


@scim_endpoint("GET", "POST", "PUT", "PATCH", "DELETE")
def scim_not_found(request: HttpRequest, token: ApiToken, unknown: str) -> HttpResponse:
    raise NotFoundException(detail=f"There is no endpoint /{unknown} in this SCIM service.")


urlpatterns = [
    path("scim/v2/Users", scim_users, name="scim_users"),
    path("scim/v2/Users/.search", scim_users_search, name="scim_users_search"),
    path("scim/v2/Users/<str:scim_id>", scim_user, name="scim_user"),
    path("scim/v2/Groups", scim_groups, name="scim_groups"),
    path("scim/v2/Groups/.search", scim_groups_search, name="scim_groups_search"),
    path("scim/v2/Groups/<str:scim_id>", scim_group, name="scim_group"),
    path(
        "scim/v2/ServiceProviderConfig",
        scim_service_provider_config,
        name="scim_service_provider_config",
    ),
    path("scim/v2/ResourceTypes", scim_resource_types, name="scim_resource_types"),
    path(
        "scim/v2/ResourceTypes/<str:resource_type>", scim_resource_types, name="scim_resource_type"
    ),
    path("scim/v2/Schemas", scim_schemas, name="scim_schemas"),
    path("scim/v2/Schemas/<str:schema_id>", scim_schemas, name="scim_schema"),
    path("scim/v2/.search", scim_search, name="scim_search"),
    # Anything else under the base URL is a SCIM 404, not the portal's HTML page.
    path("scim/v2/<path:unknown>", scim_not_found, name="scim_not_found"),
]
