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


class ArmorError(MalformedError):
    """The ASCII armor around an age file is malformed (the age file inside was not reached)."""


class HeaderMacError(AuthenticationError):
    """An age header's MAC does not match: the header was altered after it was made."""


class PayloadError(AuthenticationError):
    """An age payload chunk failed authentication, or the payload is truncated or extended."""
