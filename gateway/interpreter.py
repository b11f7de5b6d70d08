"""Whether an app's import failure means it cannot share one interpreter with the gateway.

In-process mode runs the legacy app in the gateway's own Python, beside the gateway's own
dependencies. Two failures cannot be fixed by installing something into that virtualenv:
the app was written for another Python (it imports a name or a module this Python's
standard library no longer has), or it needs another version of a library the gateway
itself runs on (pydantic 1 where the gateway needs 2, say). Both are said as such, with the
way out: remote mode, the app served as it is today and the gateway pointed at it.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import re
import sys

DISTRIBUTION = "migration-gateway"
REMOTE_MODE = (
    "it cannot share one interpreter with the gateway: serve the app as it is served today (its "
    "own virtualenv, gunicorn) and point the gateway at it, GATEWAY_LEGACY_URL=http://127.0.0.1:8001 "
    "(remote mode)"
)
# modules the standard library dropped (PEP 594 in 3.13, distutils and imp in 3.12 by PEP 632
# and 3.12's cleanup): a module of that name that is missing was stdlib for the app's Python
REMOVED_STDLIB = frozenset({
    "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt", "distutils",
    "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes",
    "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib",
})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def gateway_distributions() -> frozenset[str]:
    """The distributions the installed gateway runs on, its own requirements and theirs
    (extras left out), by normalised name; empty when the gateway is not installed."""
    seen: set[str] = set()
    todo = [DISTRIBUTION]
    while todo:
        name = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            if "extra ==" in line:
                continue
            match = _NAME.match(line)
            if match and _normal(match.group(1)) not in seen:
                seen.add(_normal(match.group(1)))
                todo.append(match.group(1))
    return frozenset(seen)


def conflict(exc: ImportError) -> str | None:
    """Why this import failure rules out in-process mode, or None when it may be fixable there."""
    if not exc.name:
        return None
    top = exc.name.split(".")[0]
    python = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    if isinstance(exc, ModuleNotFoundError):
        if top in REMOVED_STDLIB:
            return f"{top!r} was in the standard library of an older Python, not of {python}"
        return None
    if top in sys.stdlib_module_names:  # "cannot import name 'Mapping' from 'collections'"
        return f"{exc.name!r} is {python}'s own module, and the app was written for another Python"
    ours = gateway_distributions()
    for dist in metadata.packages_distributions().get(top, []):
        if _normal(dist) in ours:
            version = metadata.version(dist)
            return (f"{dist} {version} is installed for the gateway itself, and the app needs "
                    "another version of it")
    return None
