"""One escaping function for every string that comes from a bundle or a server.

A device id, a file name in a zip, an error text a server sent: none of it is ours, and printed
raw it can move the cursor, clear the line, fake a line of our own output ("OK: nothing was
altered") with a newline and ANSI escape codes, or reorder what a reader sees with Unicode
bidirectional overrides. So the terminal output of `fetch`, `verify` and `decrypt`, and every
string in report.json and report.html, passes through `safe_text` (docs/threat-model.md).

Every character Python does not consider printable is replaced by a visible escape: C0 and C1
controls and DEL (\\x1b, \\x0a, \\x9b), Unicode format characters such as the bidi overrides
U+202A-U+202E and isolates U+2066-U+2069 (\\u202e), line and paragraph separators, surrogates,
unassigned and private-use code points, and every space but the ASCII one.
"""

from __future__ import annotations

from typing import Any


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(text: str) -> str:
    """`text` with every unprintable character replaced by a visible escape."""
    if text.isprintable():  # the usual case, decided in C
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def safe_lines(text: str) -> str:
    """Text of our own lines ("\\n"-separated): each line made safe, the separators kept."""
    return "\n".join(safe_text(line) for line in text.split("\n"))


def safe_tree(value: Any) -> Any:
    """A JSON-like value with every string in it (keys too) made safe."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_tree(k): safe_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_tree(v) for v in value]
    return value
