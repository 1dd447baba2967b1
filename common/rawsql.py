"""Hand-written SELECTs on the checkout path, read back as the ORM reads its fields.

Measured need: on a redemption, building and compiling a queryset cost 0.5-1 ms of CPU per query
(bench/http_load.py profiles), several times what the database spends answering it. The few
statements every order runs are written once here, in SQL both databases speak, and their values
converted by the same converters the ORM applies (SQLite keeps decimals as floats and datetimes as
text), so a caller gets what `values_list` would have given.
"""

import collections
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model

Converter = Callable[[Any, Any, Any], Any]


class Columns:
    """Model fields a hand-written SELECT reads, in order: their SQL and their conversion."""

    def __init__(self, model: type[Model], *names: str, alias: str | None = None):
        self.model = model
        self.fields: list[Field] = [model._meta.get_field(name) for name in names]
        self.alias = alias or model._meta.db_table
        self._sql: dict[tuple[str, bool], str] = {}

    @property
    def table(self) -> str:
        return connection.ops.quote_name(self.model._meta.db_table)

    def sql(self, *, qualified: bool = True) -> str:
        key = (connection.vendor, qualified)
        found = self._sql.get(key)
        if found is None:
            quote = connection.ops.quote_name
            prefix = f"{quote(self.alias)}." if qualified else ""
            found = self._sql[key] = ", ".join(f"{prefix}{quote(f.column)}" for f in self.fields)
        return found

    def convert(self, values: Sequence[Any]) -> list[Any]:
        """One row's values (these columns, in order) as the ORM would give them."""
        row = list(values)
        if len(row) != len(self.fields):
            raise ValueError(f"{len(row)} values for {len(self.fields)} columns")
        converters = self._converters
        if converters:
            db = database()
            for i, col, convert in converters:
                value = row[i]
                for converter in convert:
                    value = converter(value, col, db)
                row[i] = value
        return row

    @functools.cached_property
    def _converters(self) -> list[tuple[int, Any, list[Converter]]]:
        """The columns that have converters on the default database (on PostgreSQL, few do:
        a row of columns without any is converted without finding the connection, a thread-
        and task-local lookup), with them."""
        db = database()
        cols = ((i, f.get_col(self.alias)) for i, f in enumerate(self.fields))
        return [
            (i, col, convert)
            for i, col in cols
            if (convert := db.ops.get_db_converters(col) + col.get_db_converters(db))
        ]

    def instance(self, values: Sequence[Any]) -> Model:
        """A model instance holding these fields (the others deferred), as `.only()` gives."""
        row = self.convert(values)
        names, order = self._model_order
        return self.model.from_db(DEFAULT_DB_ALIAS, names, [row[i] for i in order])

    def record(self, values: Sequence[Any]) -> tuple:
        """These columns' values as a named tuple of the fields' attnames (and `pk`, when the
        primary key is among them): a row read for its values, without a model instance's cost
        (measured: building the two of an order's context was 3% of a redemption's CPU)."""
        return self._record_class(*self.convert(values))

    @functools.cached_property
    def _record_class(self) -> type[tuple]:
        names = [f.attname for f in self.fields]
        record = collections.namedtuple(f"{self.model.__name__}Record", names)
        pk = self.model._meta.pk.attname
        if pk in names:
            record.pk = property(operator.attrgetter(pk))
        return record

    @functools.cached_property
    def _model_order(self) -> tuple[list[str], list[int]]:
        """These fields' attnames in the model's field order (what from_db takes), and where
        each is among these columns."""
        position = {f.attname: i for i, f in enumerate(self.fields)}
        names = list(_in_model_order(self.model, frozenset(position)))
        return names, [position[name] for name in names]


@functools.cache
def _in_model_order(model: type[Model], attnames: frozenset[str]) -> tuple[str, ...]:
    """These attnames in the model's field order: the order from_db takes values in."""
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in attnames)


def deferred_instance(model: type[Model], **given: Any) -> Model:
    """An instance of `model` as loaded from the database with only `given` (by attname), the
    other fields deferred."""
    names = _in_model_order(model, frozenset(given))
    return model.from_db(DEFAULT_DB_ALIAS, list(names), [given[name] for name in names])


def _insert_into(meta) -> tuple[str, list[Field]]:
    """`INSERT INTO table (columns)` and its fields: every concrete one but the primary key,
    which the database draws."""
    return _insert_head(connection.vendor, meta)


@functools.cache
def _insert_head(vendor: str, meta) -> tuple[str, list[Field]]:
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    return f"INSERT INTO {quote(meta.db_table)} ({columns})", fields


def database():
    """The default database's connection itself. `django.db.connection` is a proxy that finds it
    again (a thread- and task-local lookup) on every attribute read, and preparing a value reads
    it several times: a caller preparing many values passes this instead."""
    return connections[DEFAULT_DB_ALIAS]


def _value(field: Field, obj: Model, db) -> Any:
    return field.get_db_prep_save(field.pre_save(obj, True), db)


def insert(objs: Sequence[Model]) -> None:
    """INSERT model instances of one model (each already validated) in one statement, and set
    their primary keys from RETURNING: what `bulk_create` does, for the few rows every
    redemption writes, without its compiler (measured: 0.5-1 ms of CPU per call)."""
    if not objs:
        return
    meta = objs[0]._meta
    head, fields = _insert_into(meta)
    row = f"({', '.join(['%s'] * len(fields))})"
    db = database()
    params = [_value(f, obj, db) for obj in objs for f in fields]
    with db.cursor() as cursor:
        cursor.execute(
            f"{head} VALUES {', '.join([row] * len(objs))} "
            f"RETURNING {db.ops.quote_name(meta.pk.column)}",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk_value in zip(objs, ids, strict=True):
        inserted(obj, pk_value)


def insert_select_sql(model: type[Model], computed: dict[str, str]) -> str:
    """`INSERT INTO table (columns) SELECT values` for `model`, to end with the caller's
    `FROM ...`: a column named (by attname) in `computed` takes that SQL expression, every other
    one a parameter (see `insert_select_params`). The text depends on the shape only, so a caller
    can build it once."""
    head, fields = _insert_into(model._meta)
    values = (computed.get(f.attname, "%s") for f in fields)
    return f"{head} SELECT {', '.join(values)}"


def insert_select_params(obj: Model, computed: dict[str, list[Any]]) -> list[Any]:
    """The parameters of `insert_select_sql` for one validated instance, in order: a computed
    column's expression's (by attname in `computed`), every other column's value."""
    _, fields = _insert_into(obj._meta)
    db = database()
    params: list[Any] = []
    for f in fields:
        if f.attname in computed:
            params += computed[f.attname]
        else:
            params.append(_value(f, obj, db))
    return params


def inserted(obj: Model, pk_value: Any) -> None:
    """Mark an instance written by a hand-written INSERT as saved, with its primary key."""
    setattr(obj, obj._meta.pk.attname, pk_value)
    obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS
