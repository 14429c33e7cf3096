"""The device roster: which Ed25519 device keys speak for an account, decided by its devices.

A roster is a chain of signed notes (c2sp.org/signed-note). Each statement's text is, exactly:

    safehold.roster/v1
    server <server name>
    account <account uuid>
    seq <n: 0, 1, 2, ...>
    prev <64 lowercase hex: SHA-256 of statement n-1's whole note, or - for seq 0>
    device <verifier key of the device this statement adds>
    recovery <the owner's recovery age1... recipient>        (seq 0 only)

Statement 0, the genesis, is signed by the device it names (the account's first device) and
carries the recovery recipient. Every later statement adds one new device and must be signed by
a device already in the roster. A statement's hash is the SHA-256 of its whole note (signature
lines included), so the head hash pins every statement and signature before it. Whoever holds
no device key of the account (the server) cannot extend the chain; whoever pinned the genesis
(the owner's devices) or a head (a contact) detects a different chain.

Pure: no I/O, nothing of ours but crypto/.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crypto.age import validate_recipient
from crypto.errors import BadSignature, CryptoError, MalformedError
from crypto.signing import key_name, open_note_signers, public_key_bytes, sign_note, split_note

TYPE_TAG = "safehold.roster/v1"
MAX_STATEMENTS = 100  # a person's devices; keeps a roster well inside a bundle's 1 MiB manifest
MAX_NOTE_CHARS = 4096
GENESIS_PREV = "-"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DEVICE_NAME = re.compile(r"device-(" + _UUID.pattern + ")")


class RosterError(CryptoError):
    """The roster is malformed, badly signed, broken, or not the pinned one."""


@dataclass(frozen=True)
class RosterStatement:
    server: str
    account: str
    seq: int
    prev: str  # hex hash of the previous note, or "-" for the genesis
    device_key: str
    recovery: str | None  # the genesis only

    def text(self) -> str:
        lines = [TYPE_TAG, f"server {self.server}", f"account {self.account}",
                 f"seq {self.seq}", f"prev {self.prev}", f"device {self.device_key}"]
        if self.recovery is not None:
            lines.append(f"recovery {self.recovery}")
        return "".join(line + "\n" for line in lines)

    @property
    def device_id(self) -> str:
        return device_id_of(self.device_key)

    @classmethod
    def parse(cls, text: str) -> RosterStatement:
        lines = text[:-1].split("\n") if text.endswith("\n") else []
        if not lines or lines[0] != TYPE_TAG or len(lines) not in (6, 7):
            raise MalformedError(f"a roster statement is {TYPE_TAG!r} and 5 or 6 field lines")
        names = ("server", "account", "seq", "prev", "device", "recovery")[: len(lines) - 1]
        values = [_field(line, name) for line, name in zip(lines[1:], names, strict=True)]
        seq_text = values[2]
        if not seq_text.isdigit() or (seq_text != "0" and seq_text.startswith("0")) \
                or len(seq_text) > 6:
            raise MalformedError(f"roster seq must be canonical decimal, got {seq_text!r}")
        statement = cls(values[0], values[1], int(seq_text), values[3], values[4],
                        values[5] if len(values) == 6 else None)
        statement.check()
        if statement.text() != text:
            raise MalformedError("roster statement is not in canonical form")
        return statement

    def check(self) -> None:
        if not _UUID.fullmatch(self.account):
            raise MalformedError("roster account must be a lowercase uuid")
        genesis = self.seq == 0
        if genesis != (self.prev == GENESIS_PREV) or (not genesis and not _HEX64.fullmatch(
                self.prev)):
            raise MalformedError("roster prev must be '-' at seq 0 and a 64-hex hash after")
        if genesis != (self.recovery is not None):
            raise MalformedError("the recovery recipient belongs in the genesis (seq 0) only")
        if self.recovery is not None:
            validate_recipient(self.recovery)
        public_key_bytes(self.device_key)  # a valid verifier key
        device_id_of(self.device_key)


def _field(line: str, name: str) -> str:
    key, sep, value = line.partition(" ")
    if key != name or not sep or not value or " " in value:
        raise MalformedError(f"roster line should be '{name} <value>', got {line[:60]!r}")
    return value


def device_id_of(device_key: str) -> str:
    """The device id inside a device key's name `device-<uuid>` (MalformedError otherwise)."""
    match = _DEVICE_NAME.fullmatch(key_name(device_key))
    if match is None:
        raise MalformedError("a roster device key must be named device-<lowercase uuid>")
    return match.group(1)


def statement_hash(note: str) -> str:
    """Lowercase hex SHA-256 of a statement's whole note (UTF-8): what `prev` names."""
    return hashlib.sha256(note.encode("utf-8")).hexdigest()


def sign_statement(statement: RosterStatement, signing_key: str) -> str:
    statement.check()
    return sign_note(statement.text(), signing_key)


@dataclass(frozen=True)
class Roster:
    """A verified chain: its statements (notes), the devices in order, and its hashes."""

    notes: tuple[str, ...]
    statements: tuple[RosterStatement, ...]
    signers: tuple[str, ...]  # the device key that signed each statement

    @property
    def devices(self) -> list[str]:
        return [s.device_key for s in self.statements]

    @property
    def account(self) -> str:
        return self.statements[0].account

    @property
    def recovery(self) -> str:
        recovery = self.statements[0].recovery
        assert recovery is not None
        return recovery

    @property
    def genesis_hash(self) -> str:
        return statement_hash(self.notes[0])

    @property
    def head_hash(self) -> str:
        return statement_hash(self.notes[-1])

    @property
    def size(self) -> int:
        return len(self.notes)

    def hash_at(self, seq: int) -> str:
        return statement_hash(self.notes[seq])

    def device_ids(self) -> dict[str, str]:
        """device id -> device key, for every device in the roster."""
        return {s.device_id: s.device_key for s in self.statements}

    def next_statement(self, device_key: str) -> RosterStatement:
        """The statement that would add `device_key` (to be signed by a roster device)."""
        return RosterStatement(self.statements[0].server, self.account, self.size,
                               self.head_hash, device_key, None)


def genesis_statement(server: str, account: str, device_key: str,
                      recovery: str) -> RosterStatement:
    return RosterStatement(server, account, 0, GENESIS_PREV, device_key, recovery)


def open_roster(notes: Sequence[str], server: str, *, genesis_hash: str | None = None,
                account: str | None = None) -> Roster:
    """Verify a whole chain from its genesis; RosterError naming the first bad statement.

    `genesis_hash` pins the first statement (the owner's devices know it); `account` pins the
    account the chain must be about.
    """
    if isinstance(notes, str) or not 0 < len(notes) <= MAX_STATEMENTS:
        raise RosterError(f"a roster is 1 to {MAX_STATEMENTS} statements")
    statements: list[RosterStatement] = []
    signers: list[str] = []
    keys: list[str] = []
    for seq, note in enumerate(notes):
        prev_note = notes[seq - 1] if seq else None
        statement, signer = _open_one(note, seq, statements, keys, server, prev_note)
        statements.append(statement)
        signers.append(signer)
        keys.append(statement.device_key)
    roster = Roster(tuple(notes), tuple(statements), tuple(signers))
    if genesis_hash is not None and roster.genesis_hash != genesis_hash:
        raise RosterError(f"the roster starts from genesis {roster.genesis_hash[:16]}..., not "
                          f"the pinned {genesis_hash[:16]}...: it is another account's chain")
    if account is not None and roster.account != account:
        raise RosterError(f"the roster is about account {roster.account}, not {account}")
    return roster


def _open_one(note: str, seq: int, before: list[RosterStatement], keys: list[str],
              server: str, prev_note: str | None) -> tuple[RosterStatement, str]:
    where = f"roster statement {seq}"
    try:
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise MalformedError(f"a statement is text of at most {MAX_NOTE_CHARS} characters")
        text, _sigs = split_note(note)
        statement = RosterStatement.parse(text)
    except CryptoError as exc:
        raise RosterError(f"{where} is malformed: {exc}")
    if statement.seq != seq:
        raise RosterError(f"{where} says seq {statement.seq}: the chain is out of order")
    if statement.server != server:
        raise RosterError(f"{where} is for server {statement.server!r}, not {server!r}")
    if before:
        if statement.account != before[0].account:
            raise RosterError(f"{where} is about another account")
        if prev_note is None or statement.prev != statement_hash(prev_note):
            raise RosterError(f"{where} does not name statement {seq - 1}'s hash: the chain "
                              "is broken (a statement was replaced or removed)")
    if statement.device_key in keys or statement.device_id in {s.device_id for s in before}:
        raise RosterError(f"{where} adds device {statement.device_id} a second time")
    trusted = [statement.device_key] if seq == 0 else keys
    try:
        _text, signers = open_note_signers(note, trusted)
    except BadSignature:
        raise RosterError(f"{where} (adding device {statement.device_id}) is not signed by "
                          + ("that device" if seq == 0 else "a device already in the roster"))
    except CryptoError as exc:
        raise RosterError(f"{where} has a malformed signature: {exc}")
    return statement, signers[0]



def check_extends(roster: Roster, size: int, head_hash: str) -> None:
    """The roster must extend a head pinned earlier (statement size-1 with that hash): a
    shorter roster is a rollback, another statement there a fork."""
    if roster.size < size:
        raise RosterError(f"the roster has {roster.size} statement(s), but {size} were seen "
                          "before: it was rolled back")
    if size and roster.hash_at(size - 1) != head_hash:
        raise RosterError(f"roster statement {size - 1} is not the one seen before: the roster "
                          "was forked")


def check_proven_devices(roster: Roster, device_keys: Sequence[str]) -> int:
    """The size of the roster prefix whose devices are exactly `device_keys` (the keys an
    invitation proof bound); RosterError if there is none.

    A chain is valid only if each device was added by one already in it, so a prefix made of
    the owner's devices alone was signed by the owner's devices alone; everything after it is
    then signed by the owner's devices too. That prefix is what a contact pins."""
    wanted = set(device_keys)
    size = len(wanted)
    if not wanted or size > roster.size or set(roster.devices[:size]) != wanted:
        raise RosterError("the roster does not start with exactly the device keys the "
                          "invitation proved: it is not the owner's roster")
    return size
