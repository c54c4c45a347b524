"""SCIM filters (RFC 7644 §3.4.2.2) as database queries: scim2-models parses a filter into its
syntax tree, and this module maps each attribute it names onto the portal's columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from scim2_models import Group, InvalidFilterException, ScimFilter
from scim2_models.path import (
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from acknowledgements.models import Audience, User
from acknowledgements.scim.resources import ENTERPRISE, UserResource, scim_id

TRUE = Q(pk__isnull=False)
FALSE = Q(pk__in=[])


@dataclass(frozen=True)
class Column:
    """Where a SCIM attribute lives: a lookup path and how its values compare."""

    lookup: str
    kind: str = "text"  # text (case-insensitive), exact (case-sensitive), id, bool, time
    constant: Any = None  # an attribute whose value is the same for every row ("work")


# Attribute paths in lower case (RFC 7644 §3.10: attribute names are case-insensitive), with the
# enterprise extension's attributes under their URN.
USER_COLUMNS = {
    "id": Column("pk", "id"),
    "username": Column("email"),
    "externalid": Column("external_id", "exact"),
    "displayname": Column("full_name"),
    "name.formatted": Column("full_name"),
    "active": Column("is_active", "bool"),
    "emails": Column("email"),
    "emails.value": Column("email"),
    "emails.type": Column("", constant="work"),
    "emails.primary": Column("", constant=True),
    "meta.created": Column("date_joined", "time"),
    "groups": Column("audiences__pk", "id"),
    "groups.value": Column("audiences__pk", "id"),
    "groups.display": Column("audiences__name"),
    f"{ENTERPRISE}:employeenumber".lower(): Column("employee_number", "exact"),
    f"{ENTERPRISE}:manager".lower(): Column("manager_id", "id"),
    f"{ENTERPRISE}:manager.value".lower(): Column("manager_id", "id"),
}
GROUP_COLUMNS = {
    "id": Column("pk", "id"),
    "displayname": Column("name"),
    "externalid": Column("", constant=None),  # not kept: no group has one
    "members": Column("members__pk", "id"),
    "members.value": Column("members__pk", "id"),
    "members.display": Column("members__full_name"),
}
_CORE_URNS = (
    "urn:ietf:params:scim:schemas:core:2.0:user:",
    "urn:ietf:params:scim:schemas:core:2.0:group:",
)

_TEXT_LOOKUPS: dict[CompareOperator, str] = {
    CompareOperator.eq: "iexact",
    CompareOperator.co: "icontains",
    CompareOperator.sw: "istartswith",
    CompareOperator.ew: "iendswith",
    CompareOperator.gt: "gt",
    CompareOperator.ge: "gte",
    CompareOperator.lt: "lt",
    CompareOperator.le: "lte",
}


class _ToQuery(FilterVisitor[Q]):
    def __init__(self, columns: dict[str, Column], prefix: str = ""):
        self.columns = columns
        self.prefix = prefix

    def _column(self, node: Comparison | Present) -> Column:
        name = self.prefix + str(node.attr_path).lower()
        for urn in _CORE_URNS:
            name = name.removeprefix(urn)
        if name not in self.columns:
            raise InvalidFilterException(detail=f"The portal cannot filter on {node.attr_path}.")
        return self.columns[name]

    def visit_comparison(self, node: Comparison) -> Q:
        column = self._column(node)
        if not column.lookup:
            return _constant(column.constant, node.op, node.value)
        value = _coerced(column, node)
        if value is None and node.value is not None:
            return TRUE if node.op == CompareOperator.ne else FALSE
        if node.op == CompareOperator.ne:
            return ~_compare(column, CompareOperator.eq, value)
        return _compare(column, node.op, value)

    def visit_present(self, node: Present) -> Q:
        column = self._column(node)
        if not column.lookup:
            return TRUE if column.constant is not None else FALSE
        if column.kind in ("text", "exact"):
            return Q(**{f"{column.lookup}__gt": ""})
        return Q(**{f"{column.lookup}__isnull": False})

    def visit_not(self, node: Not) -> Q:
        return ~self.visit(node.expr)

    def visit_logical_expr(self, node: LogicalExpr) -> Q:
        terms = [self.visit(term) for term in node.terms]
        combined = terms[0]
        for term in terms[1:]:
            combined = combined & term if node.op == LogicalOperator.and_ else combined | term
        return combined

    def visit_value_path(self, node: ValuePath) -> Q:
        # Each model has one value per multi-valued attribute it keeps (one email, one manager)
        # or a join (groups, members), so "some value matches" is the inner filter prefixed.
        inner = _ToQuery(self.columns, prefix=f"{self.prefix}{str(node.attr_path).lower()}.")
        return inner.visit(node.val_filter)


def _coerced(column: Column, node: Comparison) -> Any:
    value = node.value
    if column.kind == "id":
        return scim_id(value)
    if column.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidFilterException(detail=f"{node.attr_path} is compared with true or false.")
        return value
    if column.kind == "time":
        try:
            return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidFilterException(detail=f"{value!r} is not a date and time.") from None
    if not isinstance(value, str):
        raise InvalidFilterException(detail=f"{node.attr_path} is compared with a string.")
    return value


def _compare(column: Column, op: CompareOperator, value: Any) -> Q:
    if column.kind in ("text", "exact"):
        lookup = _TEXT_LOOKUPS[op]
        if column.kind == "exact" and lookup.startswith("i"):
            lookup = lookup[1:]
        return Q(**{f"{column.lookup}__{lookup}": value})
    if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
        raise InvalidFilterException(detail=f"{op.value} compares strings only.")
    if column.kind == "bool" and op != CompareOperator.eq:
        raise InvalidFilterException(detail="A boolean is compared with eq or ne only.")
    suffix = "" if op == CompareOperator.eq else f"__{_TEXT_LOOKUPS[op]}"
    return Q(**{f"{column.lookup}{suffix}": value})


def _constant(constant: Any, op: CompareOperator, value: Any) -> Q:
    same: Callable[[Any, Any], bool] = lambda a, b: (  # noqa: E731
        str(a).lower() == str(b).lower() if isinstance(a, str) else a == b
    )
    if constant is None:
        return FALSE
    if op == CompareOperator.eq:
        return TRUE if same(constant, value) else FALSE
    if op == CompareOperator.ne:
        return FALSE if same(constant, value) else TRUE
    return FALSE


def filter_users(queryset: QuerySet[User], text: str) -> QuerySet[User]:
    """The people a SCIM filter selects; InvalidFilterException for one it cannot apply."""
    tree = ScimFilter[UserResource](text).ast
    return queryset.filter(
        pk__in=User.objects.filter(_ToQuery(USER_COLUMNS).visit(tree)).values("pk")
    )


def filter_groups(queryset: QuerySet[Audience], text: str) -> QuerySet[Audience]:
    """The audiences a SCIM filter selects; InvalidFilterException for one it cannot apply."""
    tree: FilterNode = ScimFilter[Group](text).ast
    query = _ToQuery(GROUP_COLUMNS).visit(tree)
    return queryset.filter(pk__in=Audience.objects.filter(query).values("pk"))
