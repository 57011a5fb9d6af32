"""The store on both backends: embedded SQLite and a real PostgreSQL (tests/postgres_cluster.py).

The PostgreSQL cases skip, saying why, when no cluster can be started on this machine.
"""

from __future__ import annotations


def test_the_throwaway_cluster_answers_in_a_schema_of_its_own(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        schema = db.execute("SELECT current_schema()").fetchone()[0]
        assert schema.startswith("t_")
        assert db.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] > 0
