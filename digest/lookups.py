"""`field__in_ints=ints(ids)`: SQL IN for many integer ids, without per-value work.

Django's `__in` resolves and prepares each value of a list on its own (a few
microseconds each); matching a day's subscribers passes hundreds of thousands of ids through
such filters, so that alone would cost seconds. `ints()` packs the ids in an array of
64-bit integers (which checks they are integers); Django hands such a value to the
lookup whole, and the lookup sends it as parameters.
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
        placeholders = ", ".join(["%s"] * len(self.rhs))
        return f"{lhs} IN ({placeholders})", (*lhs_params, *self.rhs)


def register() -> None:
    # IntegerField covers the big auto primary keys; ForeignKey the `…_id` columns.
    IntegerField.register_lookup(InInts)
    ForeignKey.register_lookup(InInts)
