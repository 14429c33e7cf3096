"""report.html: the chain-of-custody report as one self-contained page (no scripts, no fetches).

Rendered from the same dictionary as report.json, with the standard library only: every value
passes through safe_text and html.escape, so nothing in a bundle can inject markup into the
page or control characters into what a reader sees.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from string import Template
from typing import Any

from sync.report.notes import describe
from sync.report.summary import both
from sync.report.timeline import render_timeline
from sync.safetext import safe_text
from sync.verifying.findings import seq_ranges


def escape(text: str) -> str:
    """HTML-escaped, and unprintable characters made visible (build_report did it already for
    the report's strings; this page may not rely on its caller)."""
    return html.escape(safe_text(text))


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Safehold chain-of-custody report: encounter $encounter</title>
<style>
body { font-family: Georgia, serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #111; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #eee; }
code, .hash { font-family: Menlo, Consolas, monospace; font-size: 0.85rem;
              overflow-wrap: anywhere; }
.verdict { padding: 0.75rem 1rem; border: 2px solid; font-size: 1.1rem; }
.ok { border-color: #185c18; background: #eaf6ea; }
.bad { border-color: #8b0000; background: #fbeaea; }
.warn { color: #7a4b00; } .err { color: #8b0000; font-weight: bold; }
.glance th { width: 14rem; } .glance td { font-size: 1rem; }
figure.timeline { margin: 0.5rem 0; border: 1px solid #bbb; padding: 0.25rem; }
table.chunks { font-size: 0.75rem; }
table.chunks .hash { font-size: 0.68rem; min-width: 11rem; }
table.chunks td:nth-child(4), table.chunks td:nth-child(5) { min-width: 8rem; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; }
               figure.timeline { page-break-inside: avoid; } }
</style>
</head>
<body>
<h1>Chain-of-custody report<br><small>Encounter <code>$encounter</code></small></h1>
<p>Generated $generated_at by Safehold from the bundle <code>$bundle</code>,
fetched $fetched_at.</p>
<div class="verdict $verdict_class">$verdict</div>

<h2>At a glance</h2>
$glance

<h2>Timeline</h2>
<p>Each stream's chunks at the time the phone signed them. Gaps and the way each stream ended
are drawn where they happened; every chunk is listed in the appendix.</p>
<figure class="timeline">$timeline</figure>

<h2>Notes and locations</h2>
<p>What the person recording typed (badge numbers, what was said) and the locations the phone
gave, in the order of the event log. Each is its own chunk of the event log, signed by the phone
and checked like the media. Times are the phone's clock, in $zone (UTC in brackets).
Coordinates are degrees (WGS 84 as phones report them); accuracy is the phone's estimate.</p>
$notes

<h2>1. Who recorded it</h2>
<p>Each piece ("chunk") of the recording was signed on the recording phone with the device key
below. A chunk whose signature does not verify against this key is reported as altered.
Compare the fingerprint with the one the phone shows.</p>
$devices

<h2>2. Which server witnessed it</h2>
<p>The server checked every chunk's signature, size and digest when it arrived, stored it,
and added it to a tamper-evident log of this encounter that it signs with the key below. The
server never had a key that can decrypt the recording. Compare this fingerprint with the one
the server's operator publishes.</p>
$server

<h2>3. What the recording holds</h2>
<p>One output file per stream: the decrypted chunks in order. Where chunks are missing, the
file continues with the next chunk that exists; the table says where (byte offset).</p>
$streams

<h2>4. Problems and warnings</h2>
<p>Errors mean something was altered, forged or is inconsistent. Warnings (a chunk that never
reached the server, a recording that was cut off) prove no alteration.</p>
$problems

<h2>5. Who else read it</h2>
$access

<h2>6. Files and their SHA-256 digests</h2>
<h3>Inputs (the bundle)</h3>
$inputs
<h3>Outputs</h3>
$outputs

<h2>7. How anyone can re-check this</h2>
<p>Everything above can be checked again, offline, from the bundle, with Safehold and with the
standard <code>age</code> tool (age-encryption.org):</p>
$recheck
<p>What <code>safehold verify</code> checks: the server's signature on the latest checkpoint of
the log and that the log's entries hash to it (RFC 6962); the phone's signature on every chunk
descriptor; every chunk's size and SHA-256 against its descriptor; the place stanza inside every
chunk against where it lies; every receipt's checkpoint signature and inclusion proof; that every
checkpoint the server ever signed for this encounter is a prefix of the latest one; that every
chunk in the log is in the bundle; and the access log.</p>

<h2>Appendix: every chunk</h2>
<p>"Signed" is the phone's clock, inside the signed descriptor. "Received" is the server's
clock, from its receipt (the server's signature covers the log, not this time). Times are in
$zone, then UTC.</p>
$chunks
</body>
</html>
""")


def _cell(value: Any, mono: bool = False) -> str:
    text = "" if value is None else str(value)
    return f'<td class="hash">{escape(text)}</td>' if mono else f"<td>{escape(text)}</td>"


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]],
          mono: frozenset[int] = frozenset(), empty: str = "None.") -> str:
    """A table; without headers, the first cell of each row is its heading."""
    body = []
    for row in rows:
        cells = [_cell(v, i in mono) for i, v in enumerate(row)]
        if headers is None:
            cells[0] = f"<th>{escape(str(row[0]))}</th>"
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return f"<p>{escape(empty)}</p>"
    head = ("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
            if headers is not None else "")
    return f"<table>{head}{''.join(body)}</table>"


def _stream_state(s: dict[str, Any]) -> str:
    if s.get("closed"):
        return f"complete: ends with its final chunk (seq {s['final_seq']})"
    if s.get("open_by_design"):
        return "open: notes added after the recording stopped (this stream never closes)"
    return (f"CUT OFF: no final chunk; last is seq {s['last_seq']}, signed "
            f"{s['last_device_time']}, received {s['last_received_at'] or 'unknown'}")


def _streams(report: dict[str, Any]) -> str:
    rows = []
    for s in report["streams"]:
        out = s.get("output") or {}
        gaps = "; ".join(f"seq {_ranges(g['missing'])} {g['reason']} (output continues at "
                         f"byte {g['at_offset']})" for g in out.get("gaps", [])) or "none"
        rows.append((s["name"], out.get("file"), len(s["seqs"]), _ranges(s["seqs"]),
                     _stream_state(s), _ranges(s["missing"]) or "none", gaps,
                     out.get("size"), out.get("sha256")))
    return table(["stream", "output file", "chunks", "seqs", "status", "never received",
                  "gaps in output", "bytes", "SHA-256"], rows, frozenset({8}))


def _ranges(seqs: list[int]) -> str:
    return seq_ranges(seqs)


def _problems(report: dict[str, Any]) -> str:
    items = [f'<li class="{"err" if p["severity"] == "error" else "warn"}">'
             f"{escape(p['severity'].upper())}: {escape(p['message'])}</li>"
             for p in report["problems"]]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>None.</p>"


def _chunks(report: dict[str, Any]) -> str:
    names = {d["device_id"]: short_name(d) for d in report["devices"]}
    rows = []
    for c in report["chunks"]:
        out = c.get("output")
        where = f"{out['file']} bytes {out['offset']}-{out['offset'] + out['length']}" if out \
            else "not in output"
        rows.append((c["stream"], c["seq"], "yes" if c["final"] else "", when(c["device_time"]),
                     when(c["received_at"]), names.get(c["signed_by"], c["signed_by"]),
                     c["leaf_index"], c["size"], c["sha256"], where))
    return table(["stream", "seq", "final", "signed (phone)", "received (server)", "device",
                  "log entry", "bytes", "SHA-256 of the chunk file", "place in output"],
                 rows, frozenset({8})).replace("<table>", '<table class="chunks">', 1)


def verdict(report: dict[str, Any]) -> tuple[str, str]:
    result = report["result"]
    if not result["verified"]:
        return "bad", (f"NOT VERIFIED: {result['errors']} errors. The bundle was altered, forged "
                       "or is inconsistent; nothing was decrypted.")
    if not result["all_decrypted"]:
        return "bad", ("Verified: nothing was altered. But some chunks could not be decrypted "
                       "with the key used; see section 4.")
    note = f" {result['warnings']} warnings (see section 4)." if result["warnings"] else ""
    return "ok", f"Verified: nothing in this recording was altered.{note}"


def when(text: Any) -> str:
    """A time from the bundle in this computer's zone and in UTC, or as it is if unreadable."""
    shown = both(text)
    return f"{shown['local']} ({shown['utc'][11:]})" if shown else str(text or "unknown")


def short_name(device: dict[str, Any]) -> str:
    key = f"key {str(device.get('fingerprint') or '')[:12]}"
    return f"{device['name']} ({key})" if device.get("name") else f"device with {key}"


def _glance(report: dict[str, Any]) -> str:
    summary, zone = report.get("summary") or {}, report.get("time_zone") or {}

    def moment(key: str) -> str:
        value = summary.get(key)
        return f"{value['local']}  ({value['utc']})" if value else "unknown"

    streams = ", ".join(f"{s['name']}: {(s.get('output') or {}).get('file') or 'no output'}"
                        for s in report["streams"]) or "none"
    ended = ("; ".join(f"{n} was CUT OFF (no final chunk)" for n in summary.get("cut_off", []))
             or "every stream ends with its final chunk")
    rows = [("Started (first chunk signed by the phone)", moment("started")),
            ("Ended (last chunk signed)", moment("ended")),
            ("Duration", summary.get("duration") or "unknown"),
            ("How it ended", ended),
            ("Gaps", ", ".join(summary.get("with_gaps", [])) or "none: no chunk is missing"),
            ("Recorded by", "; ".join(short_name(d) for d in report["devices"]) or "unknown"),
            ("Output files", streams),
            ("Time zone", f"{zone.get('name')} (UTC{zone.get('utc_offset')}), the zone of the "
                          "computer that ran safehold decrypt; UTC in brackets")]
    return table(None, rows).replace("<table>", '<table class="glance">', 1)


def _notes(report: dict[str, Any]) -> str:
    rows = [(when(n.get("at")), "note" if n["event"] == "note" else "location", describe(n),
             f"{n['stream']} seq {n['seq']}" + ("; added after the recording stopped"
                                                if n.get("after_stop") else ""))
            for n in report.get("notes", [])]
    return table(["time (phone clock)", "what", "entry", "event log chunk"], rows,
                 empty="The event log holds no notes or locations.")


def render_html(report: dict[str, Any]) -> str:
    server = report["server"]
    verdict_class, verdict_text = verdict(report)
    kv = [("server name", server["name"]), ("URL", server["url"]),
          ("key fingerprint (SHA-256)", server["fingerprint"]), ("log", server["log_origin"]),
          ("log entries", server["log_size"]), ("log root (latest checkpoint)", server["log_root"])]
    return PAGE.substitute(
        encounter=escape(str(report["encounter_id"])),
        generated_at=escape(when(report["generated_at"])),
        bundle=escape(report["bundle"]["path"]),
        fetched_at=escape(when(report["bundle"].get("fetched_at")) if report["bundle"].get(
            "fetched_at") else "at an unknown time"),
        verdict_class=verdict_class, verdict=escape(verdict_text),
        glance=_glance(report), timeline=render_timeline(report),
        zone=escape(str((report.get("time_zone") or {}).get("name"))),
        devices=table(["who", "device id", "key fingerprint (SHA-256)", "chunks signed"],
                      [(d.get("name") or "(not named in your state folder)", d["device_id"],
                        d["fingerprint"], d["chunks_signed"]) for d in report["devices"]],
                      frozenset({2})),
        server=table(None, kv, frozenset({1})),
        streams=_streams(report), problems=_problems(report), chunks=_chunks(report),
        notes=_notes(report),
        access=table(["log entry", "contact", "what", "time"],
                     [(a["index"], "you" if a["contact"] == report.get("reader_contact")
                       else a["contact"], a["what"], when(a["time"])) for a in report["access"]],
                     empty="No contact has read this encounter (per the bundle's log)."),
        inputs=table(["file", "bytes", "SHA-256"],
                     [(f["file"], f["size"], f["sha256"]) for f in report["inputs"]],
                     frozenset({2})),
        outputs=table(["file", "content", "bytes", "SHA-256"],
                      [(f["file"], f.get("kind") or "unknown (raw bytes)", f["size"],
                        f["sha256"]) for f in report["outputs"]], frozenset({3})),
        recheck=table(["what", "command"],
                      [(r["what"], r["command"]) for r in report["recheck"]], frozenset({1})),
    )
