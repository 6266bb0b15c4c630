"""Row access for the chat-turn hot path, without the ORM's per-query work.

Every chat turn reads its conversation, stores two messages and moves the conversation's
counters twice. Through the ORM each of those statements cost 0.6-1.2 ms of CPU (query
compilation, expression resolution, model construction), four to seven times the SQL
itself (measured for bench/chat_turns.py), and a turn's database work was half of its
server CPU. These helpers send the same SQL through Django's own connection, so the pool,
transactions and SQLite (`make run`) behave as usual, and convert values with Django's
own field preparation and converters. The SQL is built once per model from its fields,
so it follows the schema; everything else keeps using the ORM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model

type Converter = tuple[Any, list]  # (column expression, Django's converters for it)


def _alias(model: type[Model], *, write: bool) -> str:
    return router.db_for_write(model) if write else router.db_for_read(model)


@cache
def _select(model: type[Model], column: str, alias: str) -> tuple[str, list[str], list[Converter]]:
    connection = connections[alias]
    meta = model._meta
    fields = meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    where = quote(meta.get_field(column).column)
    # Table and column names come from the model's metadata; the value is a bound parameter.
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {where} = %s"  # noqa: S608
    converters = []
    for field in fields:
        expression = field.get_col(meta.db_table)
        converters.append(
            (expression, connection.ops.get_db_converters(expression) + field.get_db_converters(connection))
        )
    return sql, [f.attname for f in fields], converters


def fetch_one[M: Model](model: type[M], *, field: str, value: object) -> M | None:
    """The row of `model` whose unique `field` equals `value`, as a model instance, or None."""
    alias = _alias(model, write=False)
    connection = connections[alias]
    sql, attnames, converters = _select(model, field, alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value_, (expression, functions) in zip(row, converters, strict=True):
        for convert in functions:
            value_ = convert(value_, expression, connection)
        values.append(value_)
    return model.from_db(alias, attnames, values)


@cache
def _insert(model: type[Model], alias: str) -> tuple[str, list[Field], bool]:
    connection = connections[alias]
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    quote = connection.ops.quote_name
    returning = connection.features.can_return_columns_from_insert
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 (as in _select)
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields, returning


def insert(instance: Model) -> None:
    """INSERT a new instance (defaults and auto_now fields applied as save() would); sets its pk."""
    model = type(instance)
    alias = _alias(model, write=True)
    connection = connections[alias]
    sql, fields, returning = _insert(model, alias)
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias


def update(
    model: type[Model],
    pk: object,
    *,
    add: Mapping[str, object] | None = None,
    assign: Mapping[str, object] | None = None,
    append: Mapping[str, Sequence[object]] | None = None,
) -> int:
    """UPDATE one row: `add` moves columns by an amount in SQL (like F() + n), `assign` sets values,
    `append` adds elements to the end of JSON array columns.

    Adding and appending happen in the statement, on the row as it is when the UPDATE gets its
    lock, so concurrent writers never lose each other's changes.
    """
    alias = _alias(model, write=True)
    connection = connections[alias]
    meta = model._meta
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name, amount in (add or {}).items():
        field = meta.get_field(name)
        column = quote(field.column)
        assignments.append(f"{column} = {column} + %s")
        params.append(field.get_db_prep_save(amount, connection))
    for name, value in (assign or {}).items():
        field = meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, elements in (append or {}).items():
        if not elements:
            continue
        field = meta.get_field(name)
        column = quote(field.column)
        if connection.vendor == "postgresql":
            # jsonb || jsonb concatenates two arrays.
            assignments.append(f"{column} = {column} || %s")
            params.append(field.get_db_prep_save(list(elements), connection))
        else:
            # SQLite's json_insert applies its edits left to right; '$[#]' is the end of the array.
            assignments.append(f"{column} = json_insert({column}{", '$[#]', json(%s)" * len(elements)})")
            params.extend(field.get_db_prep_save(element, connection) for element in elements)
    params.append(pk)
    # Table and column names come from the model's metadata; every value is a bound parameter.
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
