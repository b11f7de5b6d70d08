"""Password hashes in werkzeug's format, so the legacy login accepts users created here.

`pbkdf2:sha256:<iterations>$<salt>$<hex digest>`, the salt 16 characters of [A-Za-z0-9],
exactly what `werkzeug.security.generate_password_hash(p, method="pbkdf2:sha256:N")` writes.
"""

from __future__ import annotations

import hashlib
import secrets
import string

import anyio.to_thread

SALT_CHARS = string.ascii_letters + string.digits
SALT_LENGTH = 16


def hash_password(password: str, *, iterations: int) -> str:
    salt = "".join(secrets.choice(SALT_CHARS) for _ in range(SALT_LENGTH))
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2:sha256:{iterations}${salt}${digest}"


async def hash_password_off_loop(password: str, *, iterations: int) -> str:
    # a million pbkdf2 rounds take ~0.2 s of CPU: never on the event loop
    return await anyio.to_thread.run_sync(lambda: hash_password(password, iterations=iterations))
