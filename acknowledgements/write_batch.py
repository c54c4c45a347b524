"""Rows written together: one round trip to PostgreSQL for the several rows of one event.

A signature writes its ledger entry, the client's details, the acknowledgement, perhaps its
renewal term, and the standings that keep the dashboard's counts. Sent one at a time, each
statement waited for the database in turn, and the waits were most of a signing request
(bench/RESULTS.md, figure 1a). PostgreSQL takes the statements as one string and runs them in
order in the same transaction; SQLite runs them one after the other.

A row can name the id of a row inserted before it in the batch (`last_id`), which is how an
acknowledgement points at its ledger entry without a round trip to learn the entry's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model
from django.db.models.signals import pre_save


@dataclass(frozen=True)
class LastId:
    """The id of the row this batch inserted last into `model`'s table."""

    model: type[Model]

    def sql(self, connection) -> str:
        table = self.model._meta.db_table
        if connection.vendor == "postgresql":
            # currval is the session's own: another session's inserts never show through.
            return f"currval(pg_get_serial_sequence('{table}', 'id'))"
        # SQLite: the transaction holds the database's write lock (IMMEDIATE), so the highest
        # id is the one just inserted.
        return f"(SELECT MAX(id) FROM {connection.ops.quote_name(table)})"  # noqa: S608 - a model's table name


class WriteBatch:
    """Statements queued in order and sent together by `run` (inside a transaction)."""

    def __init__(self, model: type[Model]) -> None:
        self.connection = connections[router.db_for_write(model)]
        self.statements: list[tuple[str, list[Any]]] = []

    def insert(self, model: type[Model], **values: Any) -> None:
        """INSERT one row of `model`: values by field name or attname (`person_id`), any of
        them a `LastId`."""
        quote = self.connection.ops.quote_name
        columns, placeholders, params = [], [], []
        for name, value in values.items():
            field = model._meta.get_field(name)
            if not isinstance(field, Field) or field.column is None:
                raise TypeError(f"{model.__name__}.{name} is not a column")
            columns.append(quote(field.column))
            if isinstance(value, LastId):
                placeholders.append(value.sql(self.connection))
            else:
                placeholders.append("%s")
                params.append(field.get_db_prep_save(value, self.connection))
        self.add(
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(columns)})"  # noqa: S608 - quoted names only
            f" VALUES ({', '.join(placeholders)})",
            params,
        )

    def insert_new(self, instance: Model) -> None:
        """INSERT an unsaved instance as `Model.save` would: its `pre_save` receivers called,
        then every concrete column, with the fields' defaults and `auto_now_add` applied.
        (No `post_save`: the row exists only once the batch runs.)"""
        pre_save.send(
            sender=type(instance),
            instance=instance,
            raw=False,
            using=self.connection.alias,
            update_fields=None,
        )
        self.insert(
            type(instance),
            **{
                field.attname: field.pre_save(instance, add=True)
                for field in instance._meta.local_concrete_fields
                if not field.generated
            },
        )

    def add(self, sql: str, params: list[Any]) -> None:
        self.statements.append((sql, params))

    def run(self, *returning: LastId) -> tuple:
        """Send the statements; return the ids asked for, in order."""
        if not self.connection.in_atomic_block:
            raise RuntimeError("A write batch must run inside a transaction.")
        ids = ", ".join(last.sql(self.connection) for last in returning)
        statements = [*self.statements, (f"SELECT {ids}", [])] if returning else self.statements
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                cursor.execute(
                    ";\n".join(sql for sql, _params in statements),
                    [param for _sql, params in statements for param in params],
                )
            else:
                for sql, params in statements:
                    cursor.execute(sql, params)
            row = cursor.fetchone() if returning else ()
        self.statements = []
        return tuple(row)
