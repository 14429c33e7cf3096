"""The server's identity, documentation, key handling and the serve/migrate commands."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import requests
from helpers import PYTHON, ROOT, ServerProcess, error_of

from crypto.signing import key_fingerprint, key_name, public_key_bytes
from server.store.schema import MIGRATIONS


def test_server_describes_itself_with_its_key_and_limits(live_server: ServerProcess) -> None:
    info = requests.get(live_server.url + "/v1/server", timeout=5).json()
    assert info["name"] == live_server.name
    assert key_name(info["server_key"]) == live_server.name
    assert len(public_key_bytes(info["server_key"])) == 32
    assert info["fingerprint"] == key_fingerprint(info["server_key"])
    assert info["limits"] == {"max_chunk_bytes": 4 * 1024 * 1024,
                              "max_streams_per_encounter": 8, "requests_per_minute": 100000,
                              "max_leaves_per_page": 1000, "max_receipts_per_page": 500,
                              "max_pack_chunks": 256, "max_pack_bytes": 16 * 1024 * 1024}


def test_key_made_on_first_start_is_private_logged_and_kept(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "keyed"
    server = make_server(data_dir=data_dir)
    key_file = data_dir / "server.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    info = requests.get(server.url + "/v1/server", timeout=5).json()
    assert info["fingerprint"] in server.output()
    first_key = key_file.read_text()
    server.stop()
    server.start()  # same folder, same port: the same key, not a new one
    assert key_file.read_text() == first_key
    assert requests.get(server.url + "/v1/server", timeout=5).json() == info


def test_key_for_another_name_stops_the_server(make_server, tmp_path: Path) -> None:
    data_dir = tmp_path / "moved"
    server = make_server(data_dir=data_dir)
    server.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(SAFEHOLD_DATA_DIR=str(data_dir), SAFEHOLD_PUBLIC_URL="https://elsewhere.example")
    result = subprocess.run([PYTHON, "-m", "cli.main", "serve", "--port", "1"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "elsewhere.example" in result.stderr and "SAFEHOLD_PUBLIC_URL" in result.stderr


CONTACT_OPERATIONS = {  # issue 4: trusted contacts (tests/test_contacts_*.py)
    ("POST", "/v1/contacts/invitations"), ("GET", "/v1/contacts"),
    ("GET", "/v1/contacts/{contact_id}"), ("PATCH", "/v1/contacts/{contact_id}"),
    ("DELETE", "/v1/contacts/{contact_id}"), ("POST", "/v1/contacts/{contact_id}/confirm"),
    ("GET", "/v1/invitations/{invitation_id}"), ("POST", "/v1/invitations/{invitation_id}/accept"),
    ("GET", "/v1/contact"), ("GET", "/v1/released"),
    ("POST", "/v1/encounters/{encounter_id}/alert"), ("POST", "/v1/encounters/{encounter_id}/safe"),
    ("GET", "/v1/encounters/{encounter_id}/access-log"),
}
BATCH_OPERATIONS = {  # issue 9: long fetches in few requests (tests/test_fetch_batch.py)
    ("GET", "/v1/encounters/{encounter_id}/streams/{stream}/receipts"),
    ("GET", "/v1/encounters/{encounter_id}/streams/{stream}/pack"),
}
DELETION_OPERATIONS = {  # issue 4: delayed, holdable deletion (tests/test_deletion.py)
    ("DELETE", "/v1/encounters/{encounter_id}"), ("GET", "/v1/encounters/{encounter_id}/deletion"),
    ("DELETE", "/v1/encounters/{encounter_id}/deletion"),
    ("POST", "/v1/encounters/{encounter_id}/hold"),
}
ROSTER_OPERATIONS = {  # issue 10: the signed device roster (tests/test_roster_*.py)
    ("GET", "/v1/roster"), ("POST", "/v1/roster"), ("GET", "/v1/roster/requests"),
    ("POST", "/v1/roster/requests"), ("GET", "/v1/roster/contacts"),
    ("PUT", "/v1/roster/contacts"),
}
SHARE_OPERATIONS = {  # issue 11: one-encounter shares (tests/test_share.py)
    ("GET", "/v1/encounters/{encounter_id}/grants"),
    ("POST", "/v1/encounters/{encounter_id}/grants"),
}
PAKE_OPERATIONS = {  # issue 11: short read-aloud codes (tests/test_pake_invite.py)
    ("POST", "/v1/pake"), ("GET", "/v1/pake/{pake_id}"), ("POST", "/v1/pake/{pake_id}/reply"),
    ("GET", "/v1/nameplates/{nameplate}"), ("POST", "/v1/nameplates/{nameplate}/claim"),
}
OPS_OPERATIONS = {  # issue 14: health and metrics (tests/test_ops_health.py)
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
}


def test_openapi_document_lists_every_endpoint(live_server: ServerProcess) -> None:
    spec = requests.get(live_server.url + "/openapi.json", timeout=5).json()
    operations = {(method.upper(), path) for path, item in spec["paths"].items()
                  for method in item if method != "parameters"}
    assert operations >= OPS_OPERATIONS
    operations -= OPS_OPERATIONS
    chunk = "/v1/encounters/{encounter_id}/streams/{stream}/chunks/{seq}"
    log = "/v1/encounters/{encounter_id}/log"
    assert operations == {
        ("GET", "/v1/server"), ("POST", "/v1/accounts"), ("POST", "/v1/auth/challenge"),
        ("POST", "/v1/auth/token"), ("POST", "/v1/devices/invitations"),
        ("POST", "/v1/devices"), ("GET", "/v1/account"), ("GET", "/v1/encounters"),
        ("PUT", "/v1/encounters/{encounter_id}"), ("GET", "/v1/encounters/{encounter_id}"),
        ("PUT", chunk), ("GET", chunk), ("GET", chunk + "/receipt"),
        ("POST", chunk + "/direct"), ("POST", chunk + "/commit"),  # issue 13: direct uploads
        ("GET", log + "/checkpoint"), ("GET", log + "/checkpoints/{size}"),
        ("GET", log + "/consistency"), ("GET", log + "/inclusion"), ("GET", log + "/leaves"),
        ("GET", "/v1/changes"),
    } | CONTACT_OPERATIONS | DELETION_OPERATIONS | BATCH_OPERATIONS | ROSTER_OPERATIONS \
        | SHARE_OPERATIONS | PAKE_OPERATIONS
    upload = spec["paths"][chunk]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert any(p["name"] == "Safehold-Descriptor" and p["in"] == "header"
               for p in upload["parameters"])
    for item in spec["paths"].values():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op["summary"], op  # every endpoint says what it does
            assert "default" in op["responses"]  # ... and that errors use the envelope
    envelope = spec["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]


# /docs (Swagger UI, offline): tests/test_docs_page.py


@pytest.mark.sqlite_only("reads the SQLite file; PG: tests/test_store_backends.py")
def test_migrate_command_creates_and_then_keeps_the_schema(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env["SAFEHOLD_DATA_DIR"] = str(tmp_path / "fresh")
    first = subprocess.run([PYTHON, "-m", "cli.main", "migrate"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    latest = MIGRATIONS[-1][0]
    assert "applied migration 1" in first.stdout
    assert f"schema version {latest}" in first.stdout
    again = subprocess.run([PYTHON, "-m", "cli.main", "migrate"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "applied" not in again.stdout
    db = sqlite3.connect(tmp_path / "fresh" / "safehold.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version FROM migrations").fetchall() == \
        [(m[0],) for m in MIGRATIONS]


def test_gunicorn_serves_the_same_app(make_server) -> None:
    server = make_server(kind="gunicorn")
    response = requests.get(server.url + "/v1/nothing-here", timeout=5)
    assert error_of(response) == (404, "not_found")
    assert requests.get(server.url + "/v1/server", timeout=5).json()["name"] == server.name
