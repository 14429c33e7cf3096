"""add-checkpoint (c2sp.org/tlog-witness): verify, check consistency, store, then cosign.

Status codes follow the spec: 400 malformed or old size above the checkpoint's, 403 no valid
signature by a trusted log key, 404 unknown origin, 409 old size is not the size this witness
last cosigned (the body says that size, as text/x.tlog.size) or same size with another root,
422 the consistency proof does not verify. Only 200 carries a cosignature, and only after the
new size is durably stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crypto.checkpoint import Checkpoint
from crypto.cosignature import cosign, parse_add_checkpoint
from crypto.errors import BadProof, BadSignature, CryptoError, MalformedError
from crypto.merkle import verify_consistency
from crypto.signing import key_name, open_note, split_note
from witness.state import Latest, WitnessState

SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = TEXT_TYPE


@dataclass(frozen=True)
class Witness:
    signing_key: str
    log_keys: Sequence[str]  # signed-note verifier keys of the logs it watches
    state: WitnessState
    clock: Callable[[], float]

    def keys_for(self, origin: str) -> list[str]:
        """A log key watches every origin under its name: Safehold has one log per encounter,
        named <server name>/safehold/encounter/<id>, all signed by the server's key."""
        return [k for k in self.log_keys if origin.startswith(key_name(k) + "/")]


def _refuse(status: int, message: str) -> Answer:
    return Answer(status, message + "\n")


def add_checkpoint(witness: Witness, body: bytes) -> Answer:
    if len(body) > MAX_BODY_BYTES:
        return _refuse(400, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        old_size, proof, note = parse_add_checkpoint(body)
        text, _ = split_note(note)
        cp = Checkpoint.parse(text)
    except MalformedError as exc:
        return _refuse(400, f"malformed add-checkpoint request: {exc}")
    keys = witness.keys_for(cp.origin)
    if not keys:
        return _refuse(404, f"unknown log origin {cp.origin!r}")
    try:
        open_note(note, keys)
    except CryptoError:
        return _refuse(403, "the checkpoint carries no valid signature by a trusted log key")
    if old_size > cp.size:
        return _refuse(400, f"old size {old_size} is above the checkpoint size {cp.size}")
    answer = witness.state.update(
        cp.origin, lambda latest: _decide(latest, old_size, proof, cp),
        lambda decision: (cp.size, cp.root, note) if decision.status == 200 else None)
    if answer.status == 200:
        return Answer(200, cosign(text, witness.signing_key, int(witness.clock())))
    if answer.status in (409, 422) and answer.content_type != SIZE_TYPE:
        witness.state.record_refusal(cp.origin, answer.body.strip(), body.decode())
    return answer


def _decide(latest: Latest | None, old_size: int, proof: list[bytes], cp: Checkpoint) -> Answer:
    """What to answer, given the stored latest checkpoint (runs inside the write lock)."""
    known = latest.size if latest else 0
    if old_size != known:
        return Answer(409, f"{known}\n", SIZE_TYPE)
    if latest is None or old_size == 0:
        return _refuse(422, "the proof must be empty from size 0") if proof else Answer(200, "")
    if old_size == cp.size:
        if proof:
            return _refuse(422, "the proof must be empty between equal sizes")
        if cp.root != latest.root:
            return _refuse(409, f"size {cp.size} was cosigned with another root hash: a fork")
        return Answer(200, "")
    try:
        verify_consistency(old_size, cp.size, latest.root, cp.root, proof)
    except (BadProof, BadSignature, MalformedError) as exc:
        return _refuse(422, f"not consistent with the cosigned size {old_size}: {exc}")
    return Answer(200, "")
