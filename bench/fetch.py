"""bench/fetch.py: requests and seconds to fetch an encounter of N chunks, per-chunk protocol
(before: what `safehold fetch` did until issue 9) against the batch reads (after).

A real `safehold serve` on loopback (rate limit raised so that neither run is held up; the
output says how long the default of 600 a minute would have held each). One device records
two identical encounters of --chunks chunks (alternately audio of --audio-kib and video of
--video-kib KiB, as 2-second chunks of a phone's recording would be). A trusted contact then
fetches one encounter each way, into a fresh bundle folder, 4 downloads at a time:

- before: leaves by the page, then per chunk its receipt and its bytes (one request each; none
  is over 1 MiB), then one consistency proof per receipt's tree size;
- after:  `sync.fetch.fetch_encounter` (a stream's receipts by the page, bodies by the pack,
  consistency proofs computed from the leaves).

Requests are counted from the server's own request log. Every request of a contact is one
access leaf in the log (a signed leaf and checkpoint in an fsynced transaction), so fewer
requests also mean less work for the server, not only fewer round trips.

    .venv/bin/python bench/fetch.py [--chunks 600] [--audio-kib 32] [--video-kib 192]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/crypto.py would shadow the crypto package: look in the project first, then tests/.
sys.path[:1] = [str(ROOT), str(ROOT / "tests")]

from contactkit import Invitee, add_contact  # noqa: E402
from helpers import Device, ServerProcess, registered_device  # noqa: E402

from sync.api import ApiClient  # noqa: E402
from sync.bundle.files import (  # noqa: E402
    AGE_SUFFIX,
    DESCRIPTOR_SUFFIX,
    RECEIPT_SUFFIX,
    BundleWriter,
    chunk_path,
)
from sync.fetch import Reader, contact_reader, fetch_encounter, plan_fetch  # noqa: E402

REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(?:GET|PUT|POST) /v1/')  # any status's colours
DEFAULT_RATE = 600  # per minute, burst of as many


def record(device: Device, chunks: int, audio: int, video: int) -> str:
    encounter = device.new_encounter()
    seqs = {"audio": 0, "video": 0}
    for n in range(chunks):
        stream = "audio" if n % 2 == 0 else "video"
        device.upload(encounter, stream, seqs[stream], payload=os.urandom(
            audio if stream == "audio" else video))
        seqs[stream] += 1
    return encounter


def reader_for(server: ServerProcess, owner: Device, contact: Invitee) -> Reader:
    api = ApiClient(server.url, token_provider=lambda _api: str(contact.token))
    return contact_reader(api, server.url, server.server_key(), str(contact.contact_id),
                          [{"device_id": owner.device_id, "device_key": owner.device_key}])


def fetch_per_chunk(reader: Reader, encounter: str, dest: Path) -> None:
    """The per-chunk protocol, as `safehold fetch` spoke it before the batch reads."""
    plan = plan_fetch(reader, encounter)
    writer = BundleWriter(dest)

    def one(desc: object) -> int:
        from crypto.descriptor import ChunkDescriptor

        assert isinstance(desc, ChunkDescriptor)
        answer = reader.api.chunk_receipt(encounter, desc.stream, desc.seq)
        writer.write_bytes(chunk_path(desc.stream, desc.seq, DESCRIPTOR_SUFFIX),
                           str(answer.pop("descriptor")).encode())
        writer.write_json(chunk_path(desc.stream, desc.seq, RECEIPT_SUFFIX), answer)
        body = reader.api.request("GET", f"/v1/encounters/{encounter}/streams/{desc.stream}"
                                  f"/chunks/{desc.seq}", auth=True,
                                  headers={"Range": f"bytes=0-{desc.size - 1}"}).content
        writer.write_bytes(chunk_path(desc.stream, desc.seq, AGE_SUFFIX), body)
        return int(answer["tree_size"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        sizes = set(pool.map(one, plan.chunks))
    proofs = [reader.api.consistency(encounter, size, plan.checkpoint.size)
              for size in sorted(sizes) if 0 < size < plan.checkpoint.size]
    writer.write_json("proofs.json", [[base64.b64encode(h).decode() for h in p] for p in proofs])


def requests_in(server: ServerProcess, since: int) -> int:
    return len(REQUEST_LINE.findall(server.output()[since:]))


def held_up(requests: int) -> float:
    """Seconds the default rate limit would make a fetch of this many requests wait."""
    return max(0.0, (requests - DEFAULT_RATE) / (DEFAULT_RATE / 60))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=600)
    parser.add_argument("--audio-kib", type=int, default=32)
    parser.add_argument("--video-kib", type=int, default=192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        server = ServerProcess(root / "data", env={"SAFEHOLD_RATE_PER_MINUTE": "10000000"}).start()
        try:
            owner = registered_device(server.url, server.name)
            contact = add_contact(owner, "immediate")
            sizes = (args.audio_kib * 1024 - 300, args.video_kib * 1024 - 300)
            before_enc, after_enc = (record(owner, args.chunks, *sizes) for _ in range(2))
            reader = reader_for(server, owner, contact)
            results = {}
            for name, run, encounter in (("before", fetch_per_chunk, before_enc),
                                         ("after", None, after_enc)):
                mark = len(server.output())
                started = time.perf_counter()
                if run is None:
                    fetch_encounter(reader, encounter, root / name)
                else:
                    run(reader, encounter, root / name)
                seconds = time.perf_counter() - started
                results[name] = (requests_in(server, mark), seconds)
        finally:
            server.stop()
    print(f"{args.chunks} chunks (audio {args.audio_kib} KiB / video {args.video_kib} KiB "
          "alternately), fetched by a trusted contact, 4 at a time, loopback")
    for name, (count, seconds) in results.items():
        print(f"{name:6}: {count:6d} requests ({count / args.chunks:.3f} per chunk), "
              f"{seconds:6.2f} s; the default 600/min would add {held_up(count):5.0f} s of waits")
    (b_count, b_secs), (a_count, a_secs) = results["before"], results["after"]
    print(f"ratio after / before: requests {a_count / b_count:.3f}, seconds {a_secs / b_secs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
