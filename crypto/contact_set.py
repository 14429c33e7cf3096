"""The contact set: the recipients an owner's devices seal every chunk to, signed by one of them.

A device that pinned a contact (its keys proven with the invitation secret, docs/protocol.md)
signs the whole set as a note, so the account's other devices seal to the same contacts without
trusting the server for any key. The text is exactly:

    safehold.contacts/v1
    server <server name>
    account <account uuid>
    seq <n>                       (each new set has a higher seq than the one it replaces)
    contact <contact id> <age1...>   (zero or more lines, sorted by contact id)

It is valid only with a signature by a device in the account's roster (crypto/roster.py).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crypto.age import validate_recipient
from crypto.errors import CryptoError, MalformedError
from crypto.roster import Roster, RosterError
from crypto.signing import open_note_signers, sign_note

TYPE_TAG = "safehold.contacts/v1"
MAX_RECIPIENTS = 256
MAX_NOTE_CHARS = 4096 + 64 * MAX_RECIPIENTS


@dataclass(frozen=True)
class ContactSet:
    server: str
    account: str
    seq: int
    contacts: tuple[tuple[str, str], ...]  # (contact id, age recipient), sorted

    @property
    def recipients(self) -> list[str]:
        return [recipient for _cid, recipient in self.contacts]

    def text(self) -> str:
        lines = [TYPE_TAG, f"server {self.server}", f"account {self.account}", f"seq {self.seq}"]
        lines += [f"contact {cid} {recipient}" for cid, recipient in self.contacts]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> ContactSet:
        lines = text[:-1].split("\n") if text.endswith("\n") else []
        if len(lines) < 4 or lines[0] != TYPE_TAG:
            raise MalformedError(f"a contact set starts with {TYPE_TAG!r}")
        fixed = [_field(line, name) for line, name in
                 zip(lines[1:4], ("server", "account", "seq"), strict=True)]
        if not fixed[2].isdigit() or len(fixed[2]) > 12 or str(int(fixed[2])) != fixed[2]:
            raise MalformedError("contact set seq must be canonical decimal")
        contacts = tuple(_contact(line) for line in lines[4:])
        if len(contacts) > MAX_RECIPIENTS or len({c for c, _r in contacts}) != len(contacts):
            raise MalformedError("a contact set lists each contact once, at most 256")
        found = cls(fixed[0], fixed[1], int(fixed[2]), tuple(sorted(contacts)))
        if found.text() != text:
            raise MalformedError("contact set is not in canonical form")
        return found


def _field(line: str, name: str) -> str:
    key, sep, value = line.partition(" ")
    if key != name or not sep or not value or " " in value:
        raise MalformedError(f"contact set line should be '{name} <value>'")
    return value


def _contact(line: str) -> tuple[str, str]:
    key, sep, rest = line.partition(" ")
    contact_id, sep2, recipient = rest.partition(" ")
    if key != "contact" or not sep or not sep2 or not contact_id or " " in recipient:
        raise MalformedError("contact set line should be 'contact <id> <age1...>'")
    if len(contact_id) > 64 or not contact_id.isascii() or not contact_id.isprintable():
        raise MalformedError("a contact id is at most 64 printable ASCII characters")
    validate_recipient(recipient)
    return contact_id, recipient


def sign_contact_set(contact_set: ContactSet, signing_key: str) -> str:
    ContactSet.parse(contact_set.text())  # refuse what a reader would refuse
    return sign_note(contact_set.text(), signing_key)


def open_contact_set(note: str, roster: Roster, server: str,
                     signers: Sequence[str] | None = None) -> ContactSet:
    """The set inside `note` if a device of `roster` signed it, for this server and account."""
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise RosterError("a contact set is text of bounded size")
    try:
        text, _ = open_note_signers(note, list(signers or roster.devices))
        found = ContactSet.parse(text)
    except CryptoError as exc:
        raise RosterError(f"the contact set is not signed by a device of the roster: {exc}")
    if found.server != server or found.account != roster.account:
        raise RosterError("the contact set is for another server or account")
    return found
