"""Long fetches in one command (issue 9): a trusted contact fetches a 160-chunk recording from a
server with its default settings, in a handful of requests (counted in the server's own request
log) that are logged as her reads chunk by chunk; and on a server that says "too many
requests", fetch waits as long as it is told, says so, and finishes.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from fetchkit import household, log_offset, record, requests_since, safehold

from sync.errors import ServerRefusal
from sync.people.client import contact_client
from sync.people.contact_state import ContactState
from tests.synckit import api_for

CHUNK = 1024


def test_a_160_chunk_recording_is_fetched_by_one_command_in_few_requests(
        make_server, tmp_path: Path) -> None:
    server = make_server()  # default settings: 600 requests a minute
    home = household(server, tmp_path)
    media = os.urandom(160 * CHUNK)
    encounter = record(home.phone, tmp_path, media, CHUNK)
    start = log_offset(server)
    bundle = tmp_path / "case"
    fetched = safehold("fetch", encounter, "-o", bundle, "--state", home.mom)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "audio: seq 0-159 (160 chunks), closed by final chunk 159" in fetched.stdout
    assert "Result     OK: nothing was altered" in fetched.stdout
    chunks = len(list((bundle / "chunks").glob("*/*.age")))
    assert chunks >= 160  # audio and the event log's entries

    made = requests_since(server, start)
    total = sum(made.values())
    # Login, listings, the checkpoint, one page of leaves, one of receipts, a pack per stream:
    # no request per chunk at all.
    assert total <= 12, made
    assert total / chunks < 0.1, made
    per_chunk = [k for k in made if k.endswith(("/chunks/{n}", "/receipt", "/consistency"))]
    assert not per_chunk, made
    assert made["GET /v1/encounters/{id}/streams/audio/pack"] == 1

    decrypted = safehold("decrypt", bundle, "-i", home.mom_key, "-o", tmp_path / "out")
    assert decrypted.returncode == 0, decrypted.stdout + decrypted.stderr
    assert (tmp_path / "out" / "audio.bin").read_bytes() == media

    # Her reads are logged one entry per request, as single reads are, each naming the seqs
    # it served: together, every chunk's descriptor and every chunk's bytes.
    owner = api_for(home.phone, server.url)
    entries = owner.json("GET", f"/v1/encounters/{encounter}/access-log", auth=True)["entries"]
    assert len(entries) == sum(n for k, n in made.items() if "/encounters/" in k)
    covered = Counter(read for e in entries for read in reads_named(e["what"]))
    stored = {(p.parent.name, int(p.stem)) for p in (bundle / "chunks").glob("*/*.age")}
    assert {(s, n) for kind, s, n in covered if kind == "chunk"} == stored
    assert {(s, n) for kind, s, n in covered if kind == "descriptor"} == stored
    assert set(covered.values()) == {1}  # each read once


def reads_named(what: str) -> list[tuple[str, str, int]]:
    """(kind, stream, seq) of each chunk an access entry's `what` names (none for list/log)."""
    if " " not in what:
        return []
    kind, place = what.split(" ")
    stream, seqs = place.split("/")
    first, _, last = seqs.partition("-")
    return [(kind, stream, n) for n in range(int(first), int(last or first) + 1)]


def drain(state: Path) -> ServerRefusal:
    """Spend the contact's whole rate-limit bucket; the refusal that ends it."""
    contact = ContactState(state)
    api = contact_client(contact, contact.require_memberships()[0])
    for _ in range(500):
        try:
            api.json("GET", "/v1/contact", auth=True)
        except ServerRefusal as refusal:
            return refusal
    raise AssertionError("the server never said 'too many requests'")


def test_fetch_waits_out_too_many_requests_says_so_and_finishes(make_server,
                                                                 tmp_path: Path) -> None:
    server = make_server(env={"SAFEHOLD_RATE_PER_MINUTE": "60"})  # one a second, burst 60
    home = household(server, tmp_path)
    media = os.urandom(20 * CHUNK)
    encounter = record(home.phone, tmp_path, media, CHUNK)
    refusal = drain(home.mom)
    assert refusal.status == 429 and refusal.retry_after is not None
    assert f"retry after {refusal.retry_after:g} seconds" in refusal.message

    start = log_offset(server)
    fetched = safehold("fetch", encounter, "-o", tmp_path / "case", "--state", home.mom)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "the server asks to wait (429 rate_limited): waiting 1 s, then continuing" \
        in fetched.stderr
    assert "Result     OK: nothing was altered" in fetched.stdout
    made = requests_since(server, start)
    assert made["GET /v1/encounters/{id}/streams/audio/pack"] >= 1
    limited = server.output()[start:].count('"status": 429')
    assert limited >= 1  # it was refused, waited, and came back


def test_runs_longer_than_a_pack_are_fetched_in_several(make_server, tmp_path: Path) -> None:
    server = make_server()
    phone = tmp_path / "phone"
    assert safehold("device", "register", "--server", server.url, "--state", phone
                    ).returncode == 0
    many = os.urandom(300 * CHUNK)  # 300 chunks: more than the 256 of a pack
    large = os.urandom(5 * 3_900_000)  # 5 chunks of 3.9 MB: more than the 16 MiB of a pack
    for media, chunk_bytes, packs in ((many, CHUNK, 2), (large, 3_900_000, 2)):
        encounter = record(phone, tmp_path, media, chunk_bytes)
        start = log_offset(server)
        bundle = tmp_path / encounter
        fetched = safehold("fetch", encounter, "-o", bundle, "--state", phone)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        assert "Result     OK: nothing was altered" in fetched.stdout
        assert requests_since(server, start)["GET /v1/encounters/{id}/streams/audio/pack"] \
            == packs
        out = tmp_path / f"{encounter}-out"
        assert safehold("decrypt", bundle, "-i", phone / "recovery.key", "-o", out
                        ).returncode == 0
        assert (out / "audio.bin").read_bytes() == media
