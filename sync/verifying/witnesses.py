"""k-of-n witness requirement: how many known witnesses cosigned a checkpoint.

A cosignature (c2sp.org/tlog-cosignature) says "this is the largest log I have seen, and it
is consistent with every earlier one I saw". A witness refuses to cosign a log that shrank or
forked, so requiring k cosignatures from witnesses the verifier trusts makes a rollback evident
even to someone who never saw the larger checkpoint. Unknown signature lines are ignored; a line
claiming a known witness that does not verify is reported and not counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crypto.checkpoint import encounter_origin, open_checkpoint
from crypto.cosignature import parse_cosigner_vkey, verify_cosignatures
from crypto.errors import CryptoError, MalformedError
from sync.upload.outbox import Outbox


class CheckpointSource(Protocol):
    def latest_checkpoint(self, encounter_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WitnessPolicy:
    keys: tuple[str, ...]
    required: int

    def __post_init__(self) -> None:
        for key in self.keys:
            parse_cosigner_vkey(key)  # MalformedError names what is wrong
        if len({parse_cosigner_vkey(k).public_key for k in self.keys}) != len(self.keys):
            raise MalformedError("the same witness key is given twice")
        if not 1 <= self.required <= len(self.keys):
            raise MalformedError(f"the number of required witnesses must be between 1 and "
                                 f"{len(self.keys)} (the witness keys given), got {self.required}")

    @classmethod
    def of(cls, keys: Sequence[str], required: int | None) -> WitnessPolicy:
        return cls(tuple(keys), len(keys) if required is None else required)


@dataclass
class WitnessResult:
    policy: WitnessPolicy
    cosigned_by: list[str] = field(default_factory=list)  # witness names, valid cosignatures
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.cosigned_by) >= self.policy.required

    def summary(self) -> str:
        found = len(self.cosigned_by)
        names = f" (by {', '.join(self.cosigned_by)})" if self.cosigned_by else ""
        head = (f"{found} valid witness cosignature(s) of the {self.policy.required} required "
                f"from {len(self.policy.keys)} known witness(es){names}")
        if self.ok:
            return f"witnesses: {head}"
        extra = f"; {'; '.join(self.problems)}" if self.problems else ""
        return (f"witness requirement not met: {head}{extra}; the log may have been rolled "
                f"back or forked, or the witnesses were not reachable by the server")


def check_note(note: str, policy: WitnessPolicy) -> WitnessResult:
    """Count valid cosignatures by the policy's witnesses on a signed checkpoint note."""
    result = WitnessResult(policy)
    try:
        valid, problems = verify_cosignatures(note, policy.keys)
    except CryptoError as exc:
        result.problems.append(f"the checkpoint note is malformed ({exc})")
        return result
    result.cosigned_by = [c.cosigner.name for c in valid]
    result.problems = problems
    return result


# ---------------------------------------------------------------- a device's own requirement

POLICY_META = "witness_policy"  # outbox meta key: {"keys": [...], "required": k}


def load_policy(outbox: Outbox) -> WitnessPolicy | None:
    text = outbox.get_meta(POLICY_META)
    if not text:
        return None
    data = json.loads(text)
    return WitnessPolicy(tuple(data["keys"]), int(data["required"]))


def save_policy(outbox: Outbox, policy: WitnessPolicy | None) -> None:
    value = "" if policy is None else json.dumps(
        {"keys": list(policy.keys), "required": policy.required})
    outbox.set_meta(POLICY_META, value)


def check_latest(api: CheckpointSource, server_key: str, server_name: str, encounter: str,
                 policy: WitnessPolicy) -> WitnessResult:
    """The policy on the server's latest checkpoint of `encounter` (asking for it also makes
    the server collect cosignatures it does not have yet)."""
    note = str(api.latest_checkpoint(encounter)["checkpoint"])
    try:
        open_checkpoint(note, server_key, expected_origin=encounter_origin(server_name, encounter))
    except CryptoError as exc:
        result = WitnessResult(policy)
        result.problems.append(f"the server's checkpoint does not verify ({exc})")
        return result
    return check_note(note, policy)
