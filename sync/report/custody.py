"""The chain-of-custody report (report.json, report.html) and the text `verify` prints.

The report is written for a judge or lawyer, not a cryptographer: who recorded (device key
fingerprint), which server witnessed it (server key fingerprint), when each chunk was signed
(device clock) and received (server clock, from its receipt), what is missing or cut off, the
SHA-256 of every input and output file, and the commands with which anyone can re-check it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync.bundle.manifest_info import manifest_info
from sync.report.html import render_html
from sync.report.pdf import print_pdf
from sync.report.summary import summary, time_zone_block
from sync.safetext import safe_tree
from sync.verifying.decrypt import StreamOutput
from sync.verifying.findings import Problem, seq_ranges
from sync.verifying.verify import Verification

REPORT_FORMAT = "safehold-report/v1"
PROBLEMS_SHOWN = 20  # per check, in the terminal; the report lists them all


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def chunks_word(count: int) -> str:
    return f"{count} chunk" if count == 1 else f"{count} chunks"


def _server_block(v: Verification) -> dict[str, Any]:
    t = v.trust
    cp = v.checkpoint
    return {
        "name": t.server_name if t else None,
        "url": t.server_url if t else None,
        "key": t.server_key if t else None,
        "fingerprint": t.server_fingerprint if t else None,
        "log_origin": t.origin if t else None,
        "log_size": cp.size if cp else None,
        "log_root": base64.b64encode(cp.root).decode() if cp else None,
    }


def _devices_block(v: Verification, names: dict[str, str]) -> list[dict[str, Any]]:
    if v.trust is None:
        return []
    counts = Counter(c.signed_by for c in v.chunks if c.signed_by)
    # "name": only what the reader's own state folder calls the owner (never a bundle's label).
    return [{"device_id": d, "key": k, "fingerprint": v.trust.device_fingerprints.get(d),
             "chunks_signed": counts.get(d, 0), **({"name": names[d]} if d in names else {})}
            for d, k in sorted(v.trust.devices.items())]


def _chunk_rows(v: Verification, outputs: list[StreamOutput]) -> list[dict[str, Any]]:
    placed = {(o.stream, p.seq): (o.file, p.offset, p.length) for o in outputs for p in o.pieces}
    rows = []
    for c in sorted(v.chunks, key=lambda c: (c.stream, c.seq)):
        row = c.to_json()
        where = placed.get((c.stream, c.seq))
        row["output"] = ({"file": where[0], "offset": where[1], "length": where[2]}
                         if where else None)
        rows.append(row)
    return rows


def _stream_rows(v: Verification, outputs: list[StreamOutput]) -> list[dict[str, Any]]:
    by_name = {o.stream: o for o in outputs}
    rows = []
    for s in v.streams:
        row = s.to_json()
        out = by_name.get(s.name)
        if out is not None:
            row["output"] = {"file": out.file, "kind": out.kind, "size": out.size,
                             "sha256": out.sha256,
                             "gaps": [vars(g) for g in out.gaps], "not_decrypted": out.failed}
        rows.append(row)
    return rows


def recheck_commands(bundle: str, identity: str | None, outdir: str | None,
                     example_chunk: str | None) -> list[dict[str, str]]:
    """How anyone can re-check the result with the bundle and standard tools."""
    steps = [{"what": "re-verify every signature, proof and digest (no key needed)",
              "command": f"safehold verify {bundle}"}]
    if example_chunk:
        steps.append({"what": "open any one chunk with the standard age tool "
                              "(it prints exactly that chunk's part of the recording)",
                      "command": f"age -d -i {identity or 'IDENTITY'} {bundle}/{example_chunk}"})
        steps.append({"what": "check a chunk's digest against its signed descriptor",
                      "command": f"sha256sum {bundle}/{example_chunk}"})
    if outdir:
        steps.append({"what": "check the output files against this report",
                      "command": f"cd {outdir} && sha256sum -c SHA256SUMS"})
    steps.append({"what": "compare the server key fingerprint with the one its operator "
                          "publishes (GET /v1/server), and each device fingerprint with the "
                          "owner's phone", "command": "(out of band)"})
    return steps


def build_report(v: Verification, outputs: list[StreamOutput], problems: list[Problem], *,
                 manifest: dict[str, Any], identity: str | None, outdir: str,
                 names: dict[str, str] | None = None,
                 reader_contact: str | None = None,
                 notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report as one JSON-like value. Every string in it is passed through safe_text:
    the manifest's unsigned fields and the problems' texts come from the bundle, and a
    reader of report.json (or of report.html, which is rendered from it) must not be shown
    control characters, escape codes or bidi overrides (sync/safetext.py)."""
    all_problems = v.problems + problems
    sound = [c for c in v.chunks if c.sound]
    info = manifest_info(manifest, v.trust.origin)[0] if v.trust else manifest_info({}, "")[0]
    streams, chunks = _stream_rows(v, outputs), _chunk_rows(v, outputs)
    return safe_tree({
        "format": REPORT_FORMAT,
        "generated_at": _now(),
        "encounter_id": v.trust.encounter if v.trust else None,
        "encounter": info["encounter"],  # unsigned: only well-formed values (manifest_info)
        "bundle": {"path": v.bundle, "fetched_at": info["fetched_at"],
                   "fetched_by": info["fetched_by"]},
        "summary": summary(chunks, streams),
        "time_zone": time_zone_block(),
        "reader_contact": reader_contact,  # the contact id of whoever ran decrypt, if known
        "result": {"verified": v.ok, "all_decrypted": not problems,
                   "errors": sum(p.severity == "error" for p in all_problems),
                   "warnings": sum(p.severity == "warning" for p in all_problems)},
        "server": _server_block(v),
        "devices": _devices_block(v, names or {}),
        "streams": streams,
        "chunks": chunks,
        "access": v.access,
        "notes": notes or [],  # notes and locations of the event log (sync/report/notes.py)
        "problems": [p.to_json() for p in all_problems],
        "inputs": [{"file": n, "sha256": d, "size": s} for n, (d, s) in sorted(v.inputs.items())],
        "outputs": [{"file": o.file, "kind": o.kind, "sha256": o.sha256, "size": o.size}
                    for o in outputs],
        "recheck": recheck_commands(v.bundle, identity, outdir,
                                    sound[0].age_file if sound else None),
    })


def report_json(report: dict[str, Any]) -> str:
    """JSON with one top-level field, and one row of each list, per line: readable and diffable,
    and fast (json's indent mode is pure Python; this uses its C encoder per row)."""
    fields = []
    for key, value in report.items():
        if isinstance(value, list) and value:
            rows = ",\n    ".join(json.dumps(row, sort_keys=True) for row in value)
            fields.append(f"  {json.dumps(key)}: [\n    {rows}\n  ]")
        else:
            fields.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def write_report(report: dict[str, Any], outdir: Path, pdf: bool = True) -> dict[str, Any]:
    """report.html, report.pdf (printed from it, when Chromium is there), report.json (saying
    whether and how the PDF was made), and SHA256SUMS covering every output and the reports.
    Returns what report.json says about the PDF."""
    html_path = outdir / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    report["pdf"] = (print_pdf(html_path, outdir / "report.pdf") if pdf else
                     {"file": None, "why": "not asked for (--no-pdf)"})
    (outdir / "report.json").write_text(report_json(report), encoding="utf-8")
    sums = {o["file"]: o["sha256"] for o in report["outputs"]}
    for name in ("report.json", "report.html", report["pdf"]["file"]):
        if name:
            sums[name] = hashlib.sha256((outdir / name).read_bytes()).hexdigest()
    (outdir / "SHA256SUMS").write_text(
        "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())), encoding="utf-8")
    return dict(report["pdf"])


# ---------------------------------------------------------------- terminal text


def verification_text(v: Verification) -> str:
    """What `safehold verify` prints: identities, streams, problems, verdict. The caller
    prints it through safe_lines (cli/legal.py): names in it come from the bundle."""
    lines = [f"Bundle     {v.bundle}"]
    t = v.trust
    if t is not None:
        lines += [f"Encounter  {t.encounter}",
                  f"Server     {t.server_name}  key fingerprint {t.server_fingerprint}",
                  "           (compare it out of band with the one the server's operator "
                  "publishes)"]
        lines += [f"Device     {d}  key fingerprint {t.device_fingerprints.get(d)}"
                  for d in sorted(t.devices)]
        if t.roster_genesis is not None:
            lines.append(f"Roster     {len(t.devices)} device(s) signed in from genesis "
                         f"{t.roster_genesis}")
    if v.checkpoint is not None:
        lines.append(f"Log        {v.checkpoint.size} leaves, latest checkpoint signed by the "
                     "server")
    for s in v.streams:
        state = (f"closed by final chunk {s.final_seq}" if s.final_seq is not None else
                 "open: notes added after the recording stopped" if not s.cut_off else
                 f"CUT OFF after seq {s.last_seq} (signed {s.last_device_time}, received "
                 f"{s.last_received_at or 'unknown'})")
        missing = f"; MISSING seq {seq_ranges(s.missing)}" if s.missing else ""
        lines.append(f"Stream     {s.name}: seq {seq_ranges(s.seqs)} ({chunks_word(len(s.seqs))}), "
                     f"{state}{missing}")
    if v.access:
        lines.append(f"Access     {len(v.access)} reads by contacts are in the log")
    lines += _problem_lines("ERROR", v.errors) + _problem_lines("warning", v.warnings)
    verdict = ("OK: nothing was altered" if v.ok else
               f"FAILED: {len(v.errors)} errors; the bundle was altered, forged or is inconsistent")
    if v.ok and v.warnings:
        verdict += f" ({len(v.warnings)} warnings: see above)"
    lines.append(f"Result     {verdict}")
    return "\n".join(lines) + "\n"


def _problem_lines(label: str, problems: list[Problem]) -> list[str]:
    lines: list[str] = []
    shown: Counter[str] = Counter()
    for p in problems:
        shown[p.check] += 1
        if shown[p.check] <= PROBLEMS_SHOWN:
            lines.append(f"{label:<10} {p.message}")
    for check, count in shown.items():
        if count > PROBLEMS_SHOWN:
            lines.append(f"{label:<10} ... and {count - PROBLEMS_SHOWN} more of kind {check}")
    return lines
