"""Named scenarios of the company profile, kept in the run registry's SQLite file (the workspace's
``registry.sqlite``), so a deployment has one database to back up.

The table has its own schema version in the registry's ``meta`` table (key
``scenarios_schema_version``) and its own :data:`MIGRATIONS`, so it upgrades independently of the run
tables: opening a registry created before scenarios existed adds the table (version 0 -> 1).

Every write calls :func:`engine.access.require_write` first: a read-only demo lists and reads
scenarios but cannot create, copy, rename or delete them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from engine.access import require_write
from engine.errors import ValidationError
from engine.readiness.profile import Profile, Scenario, check_scenario_name, profile_from_mapping
from engine.store import Registry

SCHEMA_KEY = "scenarios_schema_version"
SCHEMA_VERSION = 2
# MIGRATIONS[v] takes the scenarios table from version v to v + 1. Version 2 adds ``used``: when the
# scenario was last opened (the Overview starts from the most recently used one).
MIGRATIONS: dict[int, str] = {
    0: """
CREATE TABLE IF NOT EXISTS scenarios (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    profile TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
)
""",
    1: "ALTER TABLE scenarios ADD COLUMN used REAL",
}
MAX_SCENARIOS = 200


class ScenarioStore:
    """Scenarios in the registry at ``path`` (default: the workspace's)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self._registry = Registry(path)  # creates the file and the run tables, migrated
        self.path = Path(self._registry.path)
        with self._registry.connect() as conn:
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
        if row and int(row[0]) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCHEMA_KEY,)).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise ValidationError(f"registry {self.path} has scenarios schema {version}, newer than this Preflight "
                                      f"understands ({SCHEMA_VERSION}); upgrade Preflight")
            while version < SCHEMA_VERSION:
                conn.execute(MIGRATIONS[version])
                version += 1
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (SCHEMA_KEY, str(version)))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ---- reads ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Scenario names, oldest first."""
        with self._registry.connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM scenarios ORDER BY id")]

    def get(self, name: str) -> Scenario:
        with self._registry.connect() as conn:
            row = conn.execute("SELECT name, profile, created, updated FROM scenarios WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValidationError(f"no scenario named {str(name)[:40]!r}")
        return Scenario(name=row["name"], profile=profile_from_mapping(json.loads(row["profile"])),
                        created=row["created"], updated=row["updated"])

    def all(self) -> list[Scenario]:
        return [self.get(n) for n in self.names()]

    def most_recent(self) -> Scenario | None:
        """The scenario last opened or saved (the later of ``used`` and ``updated``), or None."""
        with self._registry.connect() as conn:
            row = conn.execute("SELECT name FROM scenarios ORDER BY MAX(COALESCE(used, 0), updated) DESC, id DESC "
                               "LIMIT 1").fetchone()
        return None if row is None else self.get(row[0])

    def mark_used(self, name: str) -> None:
        """Record that ``name`` was opened now. Bookkeeping, not an edit: in demo mode nothing is written
        (and the Overview then starts from the most recently saved scenario)."""
        from engine.access import demo_mode

        if demo_mode():
            return
        with self._registry.transaction() as conn:
            conn.execute("UPDATE scenarios SET used = ? WHERE name = ?", (time.time(), name))

    # ---- writes (refused in demo mode) --------------------------------------------------------
    def save(self, name: str, profile: Profile, *, overwrite: bool = True) -> Scenario:
        """Create or (with ``overwrite``) replace a scenario."""
        require_write("editing scenarios")
        name = check_scenario_name(name)
        data = json.dumps(profile.to_dict())
        now = time.time()
        with self._registry.transaction() as conn:
            exists = conn.execute("SELECT 1 FROM scenarios WHERE name = ?", (name,)).fetchone()
            if exists and not overwrite:
                raise ValidationError(f"a scenario named {name!r} exists already; choose another name")
            if not exists and conn.execute("SELECT COUNT(*) FROM scenarios").fetchone()[0] >= MAX_SCENARIOS:
                raise ValidationError(f"at most {MAX_SCENARIOS} scenarios; delete some first")
            conn.execute("INSERT INTO scenarios(name, profile, created, updated) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET profile = excluded.profile, updated = excluded.updated",
                         (name, data, now, now))
        return self.get(name)

    def copy(self, source: str, new_name: str) -> Scenario:
        require_write("copying scenarios")
        return self.save(new_name, self.get(source).profile, overwrite=False)

    def rename(self, old: str, new: str) -> Scenario:
        require_write("renaming scenarios")
        new = check_scenario_name(new)
        with self._registry.transaction() as conn:
            if conn.execute("SELECT 1 FROM scenarios WHERE name = ?", (new,)).fetchone():
                raise ValidationError(f"a scenario named {new!r} exists already; choose another name")
            cur = conn.execute("UPDATE scenarios SET name = ?, updated = ? WHERE name = ?", (new, time.time(), old))
            if cur.rowcount == 0:
                raise ValidationError(f"no scenario named {str(old)[:40]!r}")
        return self.get(new)

    def delete(self, name: str) -> None:
        require_write("deleting scenarios")
        with self._registry.transaction() as conn:
            cur = conn.execute("DELETE FROM scenarios WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise ValidationError(f"no scenario named {str(name)[:40]!r}")


def compare(results: dict[str, dict]) -> list[dict]:
    """One row per headline figure, one column per scenario (assessments' ``to_dict()`` by name)."""
    keys = ("training_cost_usd", "runway_months_after_training", "serving_gpus_needed", "serving_cost_per_month_usd",
            "revenue_per_month_usd", "gross_margin_per_request_usd", "break_even_users", "cash_out_month")
    return [{"figure": key, **{name: r.get(key) for name, r in results.items()}} for key in keys]
