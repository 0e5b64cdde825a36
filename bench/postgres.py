"""Run a benchmark's ``measure()`` in a subprocess against a scratch PostgreSQL
database on 127.0.0.1:5432, created for the run and dropped after it."""

from __future__ import annotations

import os
import subprocess
import sys

SERVER = "postgres://postgres@127.0.0.1:5432"


def measure_in_scratch_database(database: str, module: str) -> None:
    """``import <module>; <module>.measure()`` with DATABASE_URL on ``database``;
    prints "skipped" when PostgreSQL is unreachable."""
    try:
        import psycopg

        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"skipped: PostgreSQL at 127.0.0.1:5432 is unreachable ({type(exc).__name__})")
        return
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
        try:
            env = {
                **os.environ,
                "DATABASE_URL": f"{SERVER}/{database}",
                "DJANGO_SETTINGS_MODULE": "bench.settings",
            }
            code = f"import {module} as b; b.measure()"
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
