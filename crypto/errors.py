"""The one family of exceptions raised by crypto/.

Callers catch `CryptoError`; the subclasses say what went wrong without revealing secrets.
"""


class CryptoError(Exception):
    """Base class of every failure in crypto/."""


class MalformedError(CryptoError):
    """The input is not well-formed (bad encoding, bad header, bad key string)."""


class NoIdentityMatched(CryptoError):
    """None of the given identities can open this age file."""


class AuthenticationError(CryptoError):
    """A MAC, AEAD tag or length check failed: the data was altered or truncated."""


class BadSignature(CryptoError):
    """A signed note or raw signature does not verify against the expected key."""


class BadProof(CryptoError):
    """A Merkle inclusion or consistency proof, or a checkpoint, does not verify."""
