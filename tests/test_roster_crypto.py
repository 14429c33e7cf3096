"""crypto/roster.py, crypto/contact_set.py, crypto/device_link.py: the pure formats and checks.

Every way a chain can be wrong is refused with a message naming the statement: out of order,
broken link, signed by a key outside the chain, a device added twice, another server or
account, a genesis not signed by its own device, non-canonical text. Pinning: another genesis,
a rolled-back or forked roster, a prefix that is not the invitation's proven keys.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from crypto import age
from crypto.contact_set import ContactSet, open_contact_set, sign_contact_set
from crypto.device_link import LinkCode, link_proof, link_proof_matches, new_link_code
from crypto.errors import MalformedError
from crypto.roster import (
    RosterError,
    RosterStatement,
    check_extends,
    check_proven_devices,
    genesis_statement,
    open_roster,
    sign_statement,
    statement_hash,
)
from crypto.signing import generate_signing_key, verifier_key

SERVER = "safehold.example.org"
ACCOUNT = str(uuid.uuid4())
RECOVERY = age.recipient_of(age.generate_identity())


def device_key() -> str:
    return generate_signing_key(f"device-{uuid.uuid4()}")


def chain(*keys: str, signer: list[int] | None = None) -> list[str]:
    """A roster adding `keys` in order; statement i > 0 signed by keys[signer[i]] (default 0)."""
    notes = [sign_statement(genesis_statement(SERVER, ACCOUNT, verifier_key(keys[0]), RECOVERY),
                            keys[0])]
    for i, key in enumerate(keys[1:], start=1):
        statement = RosterStatement(SERVER, ACCOUNT, i, statement_hash(notes[-1]),
                                    verifier_key(key), None)
        notes.append(sign_statement(statement, keys[(signer or [0] * len(keys))[i]]))
    return notes


def test_a_chain_verifies_and_names_its_devices() -> None:
    a, b, c = device_key(), device_key(), device_key()
    roster = open_roster(chain(a, b, c, signer=[0, 0, 1]), SERVER, account=ACCOUNT)
    assert roster.devices == [verifier_key(k) for k in (a, b, c)]
    assert roster.recovery == RECOVERY and roster.size == 3
    assert roster.signers == (verifier_key(a), verifier_key(a), verifier_key(b))
    assert open_roster(roster.notes, SERVER, genesis_hash=roster.genesis_hash) == roster


@pytest.mark.parametrize("mutate, message", [
    (lambda n, k: [n[0], n[2], n[1]], "says seq 2: the chain is out of order"),
    (lambda n, k: n[:1] + [sign_statement(RosterStatement(
        SERVER, ACCOUNT, 1, "0" * 64, verifier_key(k[1]), None), k[0])] + n[2:],
     "roster statement 1 does not name statement 0's hash"),
    (lambda n, k: n[:2] + [sign_statement(RosterStatement(
        SERVER, ACCOUNT, 2, statement_hash(n[1]), verifier_key(k[2]), None), k[2])],
     "roster statement 2 (adding device"),
    (lambda n, k: n[:2] + [sign_statement(RosterStatement(
        SERVER, ACCOUNT, 2, statement_hash(n[1]), verifier_key(k[1]), None), k[0])],
     "a second time"),
    (lambda n, k: [n[0].replace("seq 0", "seq 00")] + n[1:], "roster statement 0 is malformed"),
    (lambda n, k: [n[0][:-5] + "AAAA\n"] + n[1:], "roster statement 0"),
    (lambda n, k: [], "a roster is 1 to"),
])
def test_broken_chains_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    keys = [device_key(), device_key(), device_key()]
    with pytest.raises(RosterError, match=message.replace("(", r"\(")):
        open_roster(mutate(chain(*keys), keys), SERVER)


def test_a_genesis_signed_by_another_key_and_other_servers_are_refused() -> None:
    a, b = device_key(), device_key()
    foreign = sign_statement(genesis_statement(SERVER, ACCOUNT, verifier_key(a), RECOVERY), b)
    with pytest.raises(RosterError, match="not signed by that device"):
        open_roster([foreign], SERVER)
    with pytest.raises(RosterError, match="is for server"):
        open_roster(chain(a), "other.example.org")
    with pytest.raises(RosterError, match="not the pinned"):
        open_roster(chain(a), SERVER, genesis_hash="0" * 64)
    with pytest.raises(RosterError, match="about account"):
        open_roster(chain(a), SERVER, account=str(uuid.uuid4()))
    with pytest.raises(MalformedError, match="device-<lowercase uuid>"):
        genesis_statement(SERVER, ACCOUNT, verifier_key(generate_signing_key("phone")),
                          RECOVERY).check()


def test_pins_catch_rollbacks_forks_and_foreign_prefixes() -> None:
    a, b, c = device_key(), device_key(), device_key()
    long = open_roster(chain(a, b, c), SERVER)
    short = open_roster(chain(a, b), SERVER)
    check_extends(long, 2, short.head_hash)
    with pytest.raises(RosterError, match="rolled back"):
        check_extends(short, 3, long.head_hash)
    fork = open_roster(chain(a, c), SERVER)  # the same genesis, another second statement
    with pytest.raises(RosterError, match="forked"):
        check_extends(fork, 2, short.head_hash)
    assert check_proven_devices(long, [verifier_key(a)]) == 1
    assert check_proven_devices(long, [verifier_key(b), verifier_key(a)]) == 2
    with pytest.raises(RosterError, match="invitation proved"):
        check_proven_devices(long, [verifier_key(b)])
    intruder = device_key()
    taken_over = open_roster(chain(intruder, a), SERVER)  # a chain the operator built
    with pytest.raises(RosterError, match="invitation proved"):
        check_proven_devices(taken_over, [verifier_key(a)])


def test_contact_sets_need_a_roster_signature() -> None:
    a, outsider = device_key(), device_key()
    roster = open_roster(chain(a), SERVER)
    mom = age.recipient_of(age.generate_identity())
    found = ContactSet(SERVER, ACCOUNT, 3, (("c1", mom),))
    assert open_contact_set(sign_contact_set(found, a), roster, SERVER) == found
    with pytest.raises(RosterError, match="not signed by a device of the roster"):
        open_contact_set(sign_contact_set(found, outsider), roster, SERVER)
    with pytest.raises(RosterError, match="another server or account"):
        open_contact_set(sign_contact_set(ContactSet(SERVER, str(uuid.uuid4()), 0, ()), a),
                         roster, SERVER)
    with pytest.raises(MalformedError):
        ContactSet.parse(found.text().replace(mom, "age1notarecipient"))


def test_link_codes_round_trip_and_proofs_bind_the_key() -> None:
    code = new_link_code("abcdefghijklmnopqrstuv", "ab" * 32)
    assert LinkCode.parse(code.text()) == code
    for bad in ("x.y", code.text() + ".z", code.text().replace(".", ":"),
                code.text()[:-1] + "g"):
        with pytest.raises(MalformedError):
            LinkCode.parse(bad)
    key, other = verifier_key(device_key()), verifier_key(device_key())
    proof = link_proof(code.secret, SERVER, ACCOUNT, key)
    assert link_proof_matches(code.secret, SERVER, ACCOUNT, key, proof)
    assert not link_proof_matches(code.secret, SERVER, ACCOUNT, other, proof)
    assert not link_proof_matches(b"\0" * 32, SERVER, ACCOUNT, key, proof)
    assert not link_proof_matches(code.secret, SERVER, ACCOUNT, key, None)


def test_the_worked_example_in_the_protocol_document() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs/protocol.md").read_text()
    note = doc.split("<!-- example: roster-genesis -->\n```\n", 1)[1].split("```", 1)[0]
    example_key = ("PRIVATE+KEY+device-7d4f1c2a-93b0-4e8e-a6c5-1f2e3d4c5b6a+cb293dab+"
                   "ARBR03fkKij/qQfMQnJSpYnldx90F4WziHa6H/c7UBf0")
    statement = genesis_statement("safehold.example.org", "3f2b8c1e-9a4d-4e7f-8b6a-0c1d2e3f4a5b",
                                  verifier_key(example_key),
                                  "age1zwlyl6h27gzv0lfntr7fcqrjrzqazap8sy5zylkxwneh7llf0dksu37mwt")
    assert sign_statement(statement, example_key) == note
    roster = open_roster([note], "safehold.example.org")
    assert roster.genesis_hash == \
        "e2c7c8a475c3a5341a6112537dd681edf1e3a6faf9677cb681c34f94c9bb1535"
    assert f"`{roster.genesis_hash}`" in doc
