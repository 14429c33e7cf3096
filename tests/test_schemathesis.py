"""schemathesis over our own /openapi.json against a live server, with a valid bearer token.

Checks: no 5xx anywhere, and every response (successes and refusals alike) matches the schema
the spec documents for its status. Path parameters are drawn partly from a dictionary of ids
that exist (an encounter with chunks), so the generated requests reach real data rather than
only 404s; the rest are generated (and mutated, in negative mode) by schemathesis.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import ROOT, registered_device

from crypto.roster import genesis_statement, sign_statement

SCHEMATHESIS = str(ROOT / ".venv" / "bin" / "schemathesis")
# One worker: hypothesis inside schemathesis trips a CPython 3.11 ast thread-safety bug
# ("AST constructor recursion depth mismatch") with several.
EXAMPLES_PER_OPERATION = 25

CONFIG = """
[dictionaries.encounters]
values = ["{encounter}"]
[dictionaries.streams]
values = ["audio"]
[dictionaries.seqs]
values = [0, 1]

[parameters]
"path.encounter_id" = {{ dictionary = "encounters", probability = 0.7 }}
"path.stream" = {{ dictionary = "streams", probability = 0.7 }}
"path.seq" = {{ dictionary = "seqs", probability = 0.7 }}
"""


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(make_server,
                                                                       tmp_path: Path) -> None:
    server = make_server(env={"SAFEHOLD_RATE_PER_MINUTE": "1000000",
                              "SAFEHOLD_AUTH_FAILURES_PER_MINUTE": "1000000"})
    phone = registered_device(server.url, server.name)
    genesis = genesis_statement(server.name, phone.account_id, phone.device_key,
                                phone.recovery_recipient)
    assert phone.call("POST", "/v1/roster", json={
        "statement": sign_statement(genesis, phone.signing_key)}).status_code == 201
    encounter = phone.new_encounter()
    phone.upload(encounter, "audio", 0)
    phone.upload(encounter, "audio", 1, final=True)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(encounter=encounter))
    result = subprocess.run(
        [SCHEMATHESIS, "--config-file", str(config), "--no-color", "run",
         f"{server.url}/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION),
         "--seed", "20261128", "--generation-database", "none", "--workers", "1",
         "--header", f"Authorization: Bearer {phone.token}",
         "--report-dir", str(tmp_path / "report")],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    log = server.output()
    access = [line for line in map(json.loads, filter(str.strip, log.splitlines()))
              if line["logger"] == "safehold.access"]  # JSON lines (server/ops/logs.py)
    assert access and all(line["status"] != 500 for line in access) and "Traceback" not in log
    # The token worked: authenticated operations answered 200 on real data.
    for path in (f"/v1/encounters/{encounter}/log/leaves", f"/v1/encounters/{encounter}",
                 "/v1/account", "/v1/roster",
                 f"/v1/encounters/{encounter}/streams/audio/chunks/0/receipt"):
        assert any((line["method"], line["path"], line["status"]) == ("GET", path, 200)
                   for line in access), path
