"""Build bundles directly with crypto/ (no server process), for bundle tests and bench/decrypt.py.

A `Witness` plays the server's part exactly as docs/protocol.md describes it: it appends each
signed descriptor to the encounter's Merkle log, signs a checkpoint and returns the receipt
(leaf index, tree size, checkpoint, inclusion proof). `record` plays the phone's part: it cuts
data into chunks, seals each as an age file with its slot stanza and signs its descriptor.
End-to-end tests use the real server and client instead; these give tests precise control
(cut-offs, gaps, other encounters) and make a 256 MiB bundle in seconds.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crypto import age
from crypto.access import AccessRecord, sign_access
from crypto.checkpoint import Checkpoint, encounter_origin, sign_checkpoint
from crypto.descriptor import describe_chunk, format_time, sign_descriptor
from crypto.merkle import consistency_proof, inclusion_proof, leaf_hash, root_hash
from crypto.roster import genesis_statement, sign_statement
from crypto.signing import generate_signing_key, verifier_key
from crypto.slot import Slot
from sync.bundle.files import BundleWriter

SERVER_NAME = "127.0.0.1:8765"
T0 = datetime(2026, 11, 28, 3, 30, 0, tzinfo=UTC)
ROSTER_ACCOUNT = "0b6e1c1e-6f8a-4c1e-9d2b-2f1f3c4d5e6f"
ROSTER_RECOVERY = age.recipient_of(age.generate_identity())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Witness:
    """The server's side of an encounter: its log, checkpoints and receipts."""

    name: str = SERVER_NAME
    signing_key: str = field(default_factory=lambda: generate_signing_key(SERVER_NAME))
    logs: dict[str, list[bytes]] = field(default_factory=dict)
    fast_proofs: bool = False  # bench: skip per-receipt proofs (O(n^2)); bundle proofs still made

    @property
    def verifier(self) -> str:
        return verifier_key(self.signing_key)

    hashes: dict[str, list[bytes]] = field(default_factory=dict)  # leaf hashes, kept as we go

    def checkpoint(self, encounter: str, size: int | None = None) -> str:
        hashes = self.hashes.get(encounter, [])
        size = len(hashes) if size is None else size
        cp = Checkpoint(encounter_origin(self.name, encounter), size, root_hash(hashes[:size]))
        return sign_checkpoint(cp, self.signing_key)

    def append(self, encounter: str, leaf: bytes, when: datetime) -> dict[str, Any]:
        leaves = self.logs.setdefault(encounter, [])
        leaves.append(leaf)
        hashes = self.hashes.setdefault(encounter, [])
        hashes.append(leaf_hash(leaf))
        proof = [] if self.fast_proofs else inclusion_proof(len(leaves) - 1, hashes)
        return {"leaf_index": len(leaves) - 1, "tree_size": len(leaves),
                "checkpoint": self.checkpoint(encounter),
                "inclusion_proof": [b64(p) for p in proof], "received_at": format_time(when)}


@dataclass
class Device:
    """A phone: its key is named `device-<device id>`, as every Safehold device key is."""

    device_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    signing_key: str = ""

    def __post_init__(self) -> None:
        if not self.signing_key:
            self.signing_key = generate_signing_key(f"device-{self.device_id}")

    @property
    def verifier(self) -> str:
        return verifier_key(self.signing_key)

    def roster(self, server_name: str) -> list[str]:
        """The account's device roster with this phone as its genesis (crypto/roster.py)."""
        statement = genesis_statement(server_name, ROSTER_ACCOUNT, self.verifier,
                                      ROSTER_RECOVERY)
        return [sign_statement(statement, self.signing_key)]


@dataclass
class Sealed:
    stream: str
    seq: int
    age_file: bytes
    note: str
    plaintext: bytes
    receipt: dict[str, Any] | None = None


@dataclass
class Recording:
    encounter: str
    chunks: list[Sealed]


def cut(data: bytes, chunk_bytes: int) -> list[bytes]:
    return [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]


def record(streams: dict[str, Any], recipients: list[str], device: Device, witness: Witness,
           *, chunk_bytes: int = 4096, encounter: str | None = None, cut_off: Iterable[str] = (),
           never_sent: dict[str, set[int]] | None = None,
           sealed_to: dict[tuple[str, int], list[str]] | None = None) -> Recording:
    """Seal every stream into chunks and have the witness log them in upload order.

    A stream's data is bytes (cut into `chunk_bytes` pieces) or a list of pieces (log entries).
    `cut_off`: streams whose last chunk is not marked final (the phone was taken).
    `never_sent`: seqs per stream that are sealed but never reach the server.
    `sealed_to`: other recipients for some (stream, seq) (e.g. a contact added later).
    """
    encounter = encounter or str(uuid.uuid4())
    never_sent = never_sent or {}
    out: list[Sealed] = []
    tick = 0
    for stream, data in streams.items():
        parts = data if isinstance(data, list) else cut(data, chunk_bytes)
        for seq, part in enumerate(parts):
            final = seq == len(parts) - 1 and stream not in cut_off
            slot = Slot(encounter, stream, seq, final)
            sealed = age.encrypt(part, (sealed_to or {}).get((stream, seq), recipients), slot=slot)
            when = T0 + timedelta(seconds=tick)
            tick += 1
            desc = describe_chunk(sealed, slot, format_time(when))
            note = sign_descriptor(desc, device.signing_key)
            item = Sealed(stream, seq, sealed, note, part)
            if seq not in never_sent.get(stream, set()):
                item.receipt = witness.append(encounter, note.encode(),
                                              when + timedelta(milliseconds=250))
            out.append(item)
    return Recording(encounter, out)


def access_leaf(witness: Witness, encounter: str, contact: str, what: str,
                when: datetime) -> bytes:
    """A contact's read, as the server logs it: an access record signed by the server."""
    return sign_access(AccessRecord(encounter, contact, what, format_time(when)),
                       witness.signing_key).encode()


def access_entries(leaves: list[bytes]) -> list[dict[str, Any]]:
    entries = []
    for index, leaf in enumerate(leaves):
        text = leaf.decode()
        if text.startswith("safehold.access/v1\n"):
            lines = text.split("\n\n")[0].split("\n")[1:]
            entries.append({"index": index, **dict(line.split(" ", 1) for line in lines)})
    return entries


def write_bundle(root: Path, rec: Recording, device: Device, witness: Witness) -> Path:
    """The bundle `safehold fetch` would write for this recording (every received chunk)."""
    writer = BundleWriter(root)
    leaves = witness.logs.get(rec.encounter, [])
    hashes = [leaf_hash(leaf) for leaf in leaves]
    for item in rec.chunks:
        if item.receipt is not None:
            receipt = dict(item.receipt)
            if not receipt["inclusion_proof"] and len(hashes) > 1:  # fast_proofs: make it now
                size = receipt["tree_size"]
                proof = inclusion_proof(receipt["leaf_index"], hashes[:size])
                receipt["inclusion_proof"] = [b64(p) for p in proof]
            writer.write_chunk(item.stream, item.seq, item.age_file, item.note, receipt)
    writer.write_leaves({"index": i, "data": b64(leaf)} for i, leaf in enumerate(leaves))
    writer.write_checkpoint(witness.checkpoint(rec.encounter))
    sizes = sorted({c.receipt["tree_size"] for c in rec.chunks if c.receipt})
    writer.write_consistency(
        {"first": m, "second": len(leaves), "proof": [b64(p) for p in consistency_proof(m, hashes)]}
        for m in sizes if m < len(leaves))
    writer.write_access(access_entries(leaves))
    writer.write_manifest({
        "encounter_id": rec.encounter,
        "server": {"url": f"http://{witness.name}", "name": witness.name,
                   "server_key": witness.verifier},
        "devices": [{"device_id": device.device_id, "device_key": device.verifier}],
        "roster": device.roster(witness.name),
        "fetched_at": format_time(T0 + timedelta(hours=1)),
    })
    return root


# ---------------------------------------------------------------- running the real command

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str | Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`safehold ARGS...` as a user runs it: a separate process, its exit code and output."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Scenario:
    """A recorded encounter, its bundle folder, and the keys that made and open it."""

    identity: str
    device: Device
    witness: Witness
    recording: Recording
    bundle: Path
    inputs: dict[str, Any]

    def part(self, stream: str, seq: int) -> bytes:
        return next(c.plaintext for c in self.recording.chunks
                    if c.stream == stream and c.seq == seq)


def scenario(root: Path, inputs: dict[str, Any], **kwargs: Any) -> Scenario:
    identity = age.generate_identity()
    device, witness = Device(), Witness()
    rec = record(inputs, [age.recipient_of(identity)], device, witness, **kwargs)
    bundle = write_bundle(root, rec, device, witness)
    return Scenario(identity, device, witness, rec, bundle, inputs)


_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, its workers included
print(json.dumps({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_kib": peak}))
"""


def run_cli_measured(*args: str | Path,
                     timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], int]:
    """`safehold ARGS...` and its peak resident memory in bytes (with its worker processes).

    Measured from a small intermediate process: a process started straight from this big test
    process would carry the test process's peak into its own figure (it survives exec)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "cli.main", *map(str, args)]
    outer = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout, check=True)
    got = json.loads(outer.stdout)
    done = subprocess.CompletedProcess(argv, got["code"], got["stdout"], got["stderr"])
    return done, int(got["peak_kib"]) * 1024


def stored_zip_of_empty_files(path: Path, count: int, claimed: int | None = None) -> None:
    """A real zip (zip64 end records) of `count` empty STORED files, written directly: the
    zipfile module would take minutes for half a million members. `claimed`: the member count
    its end records state (a lie, if it is not `count`; zipfile reads them all regardless)."""
    claimed = count if claimed is None else claimed
    local = struct.Struct("<4s5H3L2H")
    central = struct.Struct("<4s6H3L5H2L")
    with open(path, "wb") as out:
        directory = bytearray()
        offset = 0
        for i in range(count):
            name = f"chunks/a/{i:08d}.age".encode()
            header = local.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
            out.write(header)
            directory += central.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name),
                                      0, 0, 0, 0, 0, offset) + name
            offset += len(header)
        out.write(directory)
        eocd64_at = offset + len(directory)
        out.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, claimed, claimed,
                              len(directory), offset))
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_at, 1))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                              0xFFFFFFFF, 0))
