"""Schema migrations, in code. Each runs once, in its own transaction, recorded in `migrations`.

One list for both backends. A migration's DDL is either one portable SQL string (used by
SQLite and PostgreSQL as it is) or, where the dialects differ, a SQLite form and its
PostgreSQL twin (server/store/schema_pg.py). The first migrations shipped as sqlite-utils table
helpers; SQLite keeps running exactly those, so existing files are unchanged.

Never edit a migration that has shipped; add a new one. Several processes (gunicorn workers, the
release step, other nodes) may start at once: the version check happens under a lock that
excludes other migrating processes, so each migration is applied exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from sqlite_utils import Database

from server.store import schema_pg
from server.store.deletion import create_deletion_tables
from server.store.notify import create_notification_tables
from server.store.pake import PAKE_DDL
from server.store.roster import create_roster_tables
from server.store.shares import SHARE_DDL
from server.store.sql import Connection
from server.store.sqlite_backend import SqliteConnection
from server.store.witness import create_cosignature_table

if TYPE_CHECKING:
    from server.store.metadata import Store


class Migration(NamedTuple):
    version: int
    name: str
    # A portable SQL script, or (shipped migrations) a function of sqlite-utils' Database.
    sqlite: str | Callable[[Database], None]
    # PostgreSQL's form; None when `sqlite` is a portable script that PostgreSQL runs as is.
    postgresql: str | None = None


def _initial(db: Database) -> None:
    db.table("accounts").create(
        {"account_id": str, "recovery_recipient": str, "created_at": str},
        pk="account_id", not_null=["recovery_recipient", "created_at"],
    )
    db.table("devices").create(
        {"device_id": str, "account_id": str, "device_key": str, "created_at": str},
        pk="device_id", not_null=["account_id", "device_key", "created_at"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )
    db.table("devices").create_index(["account_id"])
    db.table("login_challenges").create(
        {"challenge_hash": str, "device_id": str, "expires_at": float},
        pk="challenge_hash", not_null=["device_id", "expires_at"],
    )
    db.table("login_challenges").create_index(["expires_at"])
    db.table("tokens").create(
        {"token_id": str, "secret_hash": str, "device_id": str, "account_id": str,
         "expires_at": float, "created_at": str},
        pk="token_id", not_null=["secret_hash", "device_id", "account_id", "expires_at"],
    )
    db.table("tokens").create_index(["expires_at"])
    db.table("device_invitations").create(
        {"code_hash": str, "account_id": str, "created_by": str, "expires_at": float,
         "redeemed_by": str, "redeemed_at": str},
        pk="code_hash", not_null=["account_id", "created_by", "expires_at"],
    )
    _initial_encounters(db)
    db.table("changes").create(
        {"id": int, "account_id": str, "kind": str, "encounter_id": str, "stream": str,
         "seq": int, "at": str},
        pk="id", not_null=["account_id", "kind", "at"],
    )
    db.table("changes").create_index(["account_id", "id"])


def _initial_encounters(db: Database) -> None:
    db.table("encounters").create(
        {"encounter_id": str, "account_id": str, "started_at": str, "created_at": str,
         "created_by": str, "log_size": int, "log_frontier": bytes},
        pk="encounter_id",
        not_null=["account_id", "started_at", "created_at", "log_size", "log_frontier"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )
    db.table("encounters").create_index(["account_id", "created_at"])
    db.table("chunks").create(
        {"encounter_id": str, "stream": str, "seq": int, "final": int, "size": int,
         "sha256": str, "descriptor": str, "device_id": str, "blob_key": str,
         "leaf_index": int, "tree_size": int, "checkpoint": str, "inclusion_proof": str,
         "received_at": str},
        pk=("encounter_id", "stream", "seq"),
        not_null=["final", "size", "sha256", "descriptor", "device_id", "blob_key",
                  "leaf_index", "tree_size", "checkpoint", "inclusion_proof", "received_at"],
        foreign_keys=[("encounter_id", "encounters", "encounter_id")],
    )
    db.table("log_leaves").create(
        {"encounter_id": str, "leaf_index": int, "hash": bytes, "data": bytes},
        pk=("encounter_id", "leaf_index"), not_null=["hash", "data"],
    )
    db.table("checkpoints").create(
        {"encounter_id": str, "tree_size": int, "root": bytes, "note": str, "created_at": str},
        pk=("encounter_id", "tree_size"), not_null=["root", "note", "created_at"],
    )


def _contacts(db: Database) -> None:
    """Trusted contacts (issue 4): invitations, contacts, alert/safe marks, releases, reads."""
    db.table("contact_invitations").create(
        {"invitation_id": str, "account_id": str, "created_by": str, "name": str,
         "policy": str, "check_in_minutes": int, "owner_recipient": str,
         "owner_device_keys": str, "owner_proof": str, "expires_at": str, "created_at": str,
         "withdrawn_at": str},
        pk="invitation_id",
        not_null=["account_id", "created_by", "name", "policy", "owner_recipient",
                  "owner_device_keys", "owner_proof", "expires_at", "created_at"],
        foreign_keys=[("account_id", "accounts", "account_id")],
    )
    db.table("contacts").create(
        {"contact_id": str, "account_id": str, "invitation_id": str, "name": str,
         "policy": str, "check_in_minutes": int, "age_recipient": str, "contact_key": str,
         "proof": str, "status": str, "notify_webhook_url": str, "notify_email": str,
         "webhook_secret": str, "accepted_at": str, "confirmed_at": str, "revoked_at": str,
         "updated_at": str},
        pk="contact_id",
        not_null=["account_id", "invitation_id", "name", "policy", "age_recipient",
                  "contact_key", "proof", "status", "accepted_at", "updated_at"],
        foreign_keys=[("account_id", "accounts", "account_id"),
                      ("invitation_id", "contact_invitations", "invitation_id")],
    )
    db.table("contacts").create_index(["invitation_id"], unique=True)
    db.table("contacts").create_index(["account_id", "status"])
    db.table("encounter_marks").create(
        {"id": int, "encounter_id": str, "kind": str, "at": str, "device_id": str},
        pk="id", not_null=["encounter_id", "kind", "at", "device_id"],
        foreign_keys=[("encounter_id", "encounters", "encounter_id")],
    )
    db.table("encounter_marks").create_index(["encounter_id", "kind"])
    # A release is decided from facts at every read; this table only records that it was
    # announced (feed row, notification) so that happens once per contact and encounter.
    db.table("releases").create(
        {"contact_id": str, "encounter_id": str, "released_at": str, "reason": str,
         "announced_at": str},
        pk=("contact_id", "encounter_id"),
        not_null=["released_at", "reason", "announced_at"],
    )
    db.table("access_log").create(
        {"id": int, "encounter_id": str, "contact_id": str, "what": str, "at": str,
         "leaf_index": int},
        pk="id", not_null=["encounter_id", "contact_id", "what", "at", "leaf_index"],
    )
    db.table("access_log").create_index(["encounter_id", "id"])
    # Change rows meant for one contact only (kind `released`); NULL for account-wide rows.
    db.execute("ALTER TABLE changes ADD COLUMN contact_id TEXT")
    db.table("changes").create_index(["account_id", "contact_id", "id"])


def _notifications_and_deletions(db: Database) -> None:
    create_notification_tables(db)
    create_deletion_tables(db)


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "accounts, devices, login, encounters, chunks, logs, changes", _initial,
              schema_pg.INITIAL),
    Migration(2, "contacts, invitations, alert and safe marks, releases, access log", _contacts,
              schema_pg.CONTACTS),
    Migration(3, "notification outbox, deletion requests, tombstones",
              _notifications_and_deletions, schema_pg.NOTIFICATIONS_AND_DELETIONS),
    # Numbered apart from its neighbours so branches adding migrations do not collide.
    Migration(10, "device rosters, device link requests, signed contact sets",
              create_roster_tables, schema_pg.ROSTERS),
    Migration(20, "witness cosignatures of checkpoints", create_cosignature_table,
              schema_pg.COSIGNATURES),
    Migration(30, "short-code (PAKE) invitation mailboxes", PAKE_DDL),
    Migration(40, "one-encounter shares and their re-wrapped headers", SHARE_DDL),
)

_MIGRATIONS_TABLE = ("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT, applied_at DOUBLE PRECISION)")


def apply_migrations(store: Store, migrations: Sequence[Migration]) -> list[str]:
    applied: list[str] = []
    for migration in migrations:
        with store.migration_transaction() as tx:
            tx.db.execute(_MIGRATIONS_TABLE)
            if tx.db.one("SELECT 1 FROM migrations WHERE version = ?", [migration.version]):
                continue
            _run(tx.db, migration)
            tx.db.insert("migrations", {"version": migration.version, "name": migration.name,
                                        "applied_at": time.time()})
        applied.append(f"{migration.version}: {migration.name}")
    return applied


def _run(db: Connection, migration: Migration) -> None:
    ddl: str | Callable[[Database], None] = migration.sqlite
    if db.dialect == "postgresql" and migration.postgresql is not None:
        ddl = migration.postgresql
    if isinstance(ddl, str):
        db.script(ddl)
    else:
        assert isinstance(db, SqliteConnection), "a sqlite-utils migration needs its PG twin"
        ddl(db.database)
