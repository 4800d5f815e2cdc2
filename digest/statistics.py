"""Keeping PostgreSQL's planner statistics in step with a run's bulk writes.

A run writes hundreds of thousands of rows (deliveries when it plans, their papers when it
matches) and reads them back within minutes: each sender looks up the papers of 500
deliveries at a time. Planned on statistics from before those rows existed (or none: a
new installation, autovacuum off or behind), PostgreSQL guessed that 500 deliveries have
millions of papers and read the whole table for every batch: 0.63 s at four million
rows, against a few milliseconds through the index, which held a million-reader send to
1,100 digests/s. So a writer refreshes the statistics itself once the rows written since
the last count are as many as the table held then: the estimates are never off by more
than half, and a day of matching refreshes them a handful of times, not once a chunk.
"""

from __future__ import annotations

from django.db import connection, models

# Below this many changed rows the table is left to autovacuum: an ANALYZE samples 30,000
# rows whatever the table's size, a fraction of a second, worth it only after a bulk write.
STATISTICS_AFTER_ROWS = 20_000


def statistics_refresh(model: type[models.Model]) -> bool:
    """ANALYZE the model's table on PostgreSQL if its statistics are stale by the rule
    above; says whether it did. Rows written by a transaction still open do not count."""
    if connection.vendor != "postgresql":
        return False
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = %s::regclass",
            [table],
        )
        row = cursor.fetchone()
        if row is None:
            return False
        changed, counted = row  # counted: -1 if never analyzed
        if changed < max(STATISTICS_AFTER_ROWS, counted):
            return False
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return True
