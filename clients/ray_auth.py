"""Ray's token authentication, handled for the user.

Ray 2.60 turns token authentication on for a head it starts (``ray start --head``
with a token present, ``ray.init()``); the token is read from ``$RAY_AUTH_TOKEN``,
else the file ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. A process that
attaches to an explicit address never turns it on by itself, so attaching to such a
head failed with "Failed to connect". rayka sets ``RAY_AUTH_MODE=token`` (before
Ray reads its config) whenever a token is available, which works against heads
with authentication on and off alike; an explicit ``RAY_AUTH_MODE`` is respected.
The shared local runtime always runs with a token: the user's, generated (mode
0600) if there is none yet.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["token_available", "prepare_token", "use_token", "default_token_path"]


def default_token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    try:
        return bool(default_token_path().read_text().strip())
    except OSError:
        return False


def _generate() -> None:
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

    path = default_token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(generate_new_authentication_token())


def prepare_token(*, create: bool) -> dict[str, str]:
    """The environment Ray needs to authenticate: ``{"RAY_AUTH_MODE": ...}`` or ``{}``.

    With ``create``, a missing token is generated (unless ``RAY_AUTH_MODE=disabled``).
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        return {"RAY_AUTH_MODE": mode}
    if not token_available():
        if not create:
            return {}
        try:
            _generate()
        except FileExistsError:  # another process generated it just now
            pass
    return {"RAY_AUTH_MODE": "token"}


def use_token(*, create: bool) -> None:
    """Apply :func:`prepare_token` to this process, refreshing Ray's cached config."""
    changes = {k: v for k, v in prepare_token(create=create).items() if os.environ.get(k) != v}
    if not changes:
        return
    os.environ.update(changes)
    try:  # Ray reads RAY_AUTH_MODE into its config when it is imported: read it again
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except ImportError:  # a Ray without token authentication
        pass
