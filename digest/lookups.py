"""`field__in_ints=ints(ids)`: SQL IN for many integer ids, without per-value work.

Django's `__in` resolves and prepares each value of a list on its own (a few
microseconds each); matching a day's subscribers passes hundreds of thousands of ids through
such filters, so that alone would cost seconds. `ints()` packs the ids in an array of
64-bit integers (which checks they are integers); Django hands such a value to the
lookup whole.

On PostgreSQL the lookup sends one parameter, the ids as an array literal
(`= ANY(%s::bigint[])`): with a placeholder per id, psycopg's client-side binding split
a query of hundreds of placeholders and adapted every id for each batch a sender claims,
a twentieth of its time. Elsewhere it sends `IN (%s, …)`, a parameter per id.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import ForeignKey, IntegerField, Lookup


def ints(ids: Iterable[int]) -> array[int]:
    """Ids for `__in_ints`."""
    return array("q", ids)


class InInts(Lookup):
    lookup_name = "in_ints"

    def get_prep_lookup(self) -> list[int]:
        if not isinstance(self.rhs, array):
            raise TypeError("__in_ints takes ints(ids), an array of ids")
        return self.rhs.tolist()

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        if not self.rhs:
            raise EmptyResultSet  # IN () matches nothing; Django drops the query
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            # The ints are ints (array("q") holds nothing else): the literal is safe to
            # build, and PostgreSQL plans = ANY(array) as it plans IN (list).
            literal = "{" + ",".join(map(str, self.rhs)) + "}"
            return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, literal)
        placeholders = ", ".join(["%s"] * len(self.rhs))
        return f"{lhs} IN ({placeholders})", (*lhs_params, *self.rhs)


def register() -> None:
    # IntegerField covers the big auto primary keys; ForeignKey the `…_id` columns.
    IntegerField.register_lookup(InInts)
    ForeignKey.register_lookup(InInts)
