"""The root trap: Apache's unprivileged children cannot read an interpreter or venv under a mode-700 home.

Started as root, Apache runs its children (and the mod_wsgi daemon processes) as ``www-data``. When the
Python installation, the virtual environment or the checkout lies below a directory that user may not
traverse (``/root`` is mode 700; pyenv installs into it), the daemon processes cannot start Python.

Neither loosening ``/root`` nor copying the installation is needed: Apache is started in a private mount
namespace (``unshare --mount``) where a fresh tmpfs (mode 711) covers each such directory and only the
paths the application needs are bind-mounted back into it, at their own paths. Everything else below the
covered directory is invisible inside the namespace, and nothing changes outside it. The mounts disappear
with the last process of the namespace, so there is nothing to clean up.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path


def blocked_ancestor(path: Path) -> Path | None:
    """The topmost ancestor of ``path`` (or itself) that other users may not traverse, if any."""
    for candidate in reversed([path, *path.parents]):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return candidate
    return None


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths that are not inside another one of them (binding the outer one brings the inner along)."""
    unique = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept


def namespace_script(needed: list[Path], command: list[str], stash: Path) -> list[str] | None:
    """A command that runs ``command`` with ``needed`` readable by other users, or None if nothing is blocked.

    The returned command starts ``sh`` under ``unshare --mount --propagation private``; the script stashes
    each blocked directory, covers it with a tmpfs, binds the needed paths back and ``exec``s the command
    (so the returned process is the command itself).
    """
    absolute = [p.resolve() for p in needed]
    blocked = {p: blocked_ancestor(p) for p in absolute}
    tops = _outermost([top for top in blocked.values() if top is not None])
    if not tops:
        return None
    lines = ["set -e"]
    for index, top in enumerate(tops):
        hidden = stash / str(index)
        inside = _outermost([p for p, t in blocked.items() if t is not None and (t == top or top in t.parents)])
        lines += [f"mkdir -p {shlex.quote(str(hidden))}",
                  f"mount --bind {shlex.quote(str(top))} {shlex.quote(str(hidden))}",
                  f"mount -t tmpfs -o mode=0711 pandasrv-rootfs {shlex.quote(str(top))}"]
        for path in inside:
            if path == top:
                raise ValueError(f"{path} itself is mode 700; the unprivileged user can never read it")
            source = hidden / path.relative_to(top)
            target = shlex.quote(str(path))
            make = f"mkdir -p {target}" if path.is_dir() else f"mkdir -p {shlex.quote(str(path.parent))} && touch {target}"
            lines += [make, f"mount --bind {shlex.quote(str(source))} {target}"]
        lines.append(f"umount -l {shlex.quote(str(hidden))}")
    lines.append("exec " + " ".join(shlex.quote(part) for part in command))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines)]


def is_root() -> bool:
    return os.geteuid() == 0
