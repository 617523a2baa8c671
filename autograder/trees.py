"""Folder trees someone else made (a submission, a kernel's private space), handled with bounds.

Nothing here recurses or follows a link: a tree of any depth or width is walked with an
explicit list, copied up to :class:`Limits`, hashed in blocks, removed with two open
folders at a time.
"""
import hashlib
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

BLOCK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What of a submission's folder is copied: folders at most ``depth`` deep, ``entries``
    files and folders, ``bytes`` in all (a file counts its apparent size: a sparse file
    is what it claims to be)."""
    depth: int = 16
    entries: int = 2000
    bytes: int = 64 * 1024 ** 2


#: What :func:`kind_of` says of what is not a regular file or a folder.
SPECIAL = ("a symbolic link", "a named pipe", "a socket", "a device file", "a special file")


def kind_of(mode):
    """None for a regular file or a folder; else what it is, in words."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "a special file"


def walk(root, limits=None):
    """``(relative path, lstat result, why left out or None)`` of everything under ``root``,
    depth first, sorted by name within a folder; nothing under a folder left out is visited.
    Without ``limits``, only links and special files are left out."""
    root = Path(root)
    budget = {"entries": 0, "bytes": 0}
    stack = []

    def visit(folder, depth):
        try:
            with os.scandir(root / folder if folder else root) as found:
                names = sorted((e.name for e in found), reverse=True)
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        stack.extend((f"{folder}/{name}" if folder else name, depth) for name in names)
        return None

    visit("", 0)
    while stack:
        rel, depth = stack.pop()
        try:
            info = os.lstat(root / rel)
        except OSError as exc:
            yield rel, None, f"cannot be read ({exc.strerror})"
            continue
        why = kind_of(info.st_mode)
        if why is None and limits is not None:
            why = _over(limits, budget, info, depth)
        if why is None and stat.S_ISDIR(info.st_mode):
            why = visit(rel, depth + 1)
        yield rel, info, why


def _over(limits, budget, info, depth):
    if stat.S_ISDIR(info.st_mode) and depth + 1 >= limits.depth:
        return f"a folder more than {limits.depth} levels deep"
    if budget["entries"] >= limits.entries:
        return f"over the limit of {limits.entries} files and folders"
    if stat.S_ISREG(info.st_mode):
        if budget["bytes"] + info.st_size > limits.bytes:
            return f"{info.st_size} bytes, over the limit of {limits.bytes // 1024 ** 2} MB in all"
        budget["bytes"] += info.st_size
    budget["entries"] += 1
    return None


def copy(src, dest, limits=Limits()):
    """Copy the regular files and folders under ``src`` to ``dest`` within ``limits``.

    Returns ``[(relative path, why it was left out)]``.
    """
    left_out = []
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel, info, why in walk(src, limits):
        if why is None:
            try:
                if stat.S_ISDIR(info.st_mode):
                    (dest / rel).mkdir()
                else:
                    _copy_file(Path(src) / rel, dest / rel, info.st_size)
            except OSError as exc:
                why = f"cannot be copied ({exc.strerror})"
        if why is not None:
            left_out.append((rel, why))
    return left_out


def _copy_file(src, dest, size):
    """At most ``size`` bytes (the file's size when listed), opened without following a link."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fin, open(dest, "wb") as fout:
        while size > 0:
            block = fin.read(min(BLOCK, size))
            if not block:
                break
            fout.write(block)
            size -= len(block)


def files(root):
    """Relative paths of the regular files under ``root``, sorted, no link followed."""
    return sorted(rel for rel, info, why in walk(root) if why is None and stat.S_ISREG(info.st_mode))


def digest(root, keep=None):
    """SHA-256 of the names and contents of the regular files under ``root``, read in blocks.

    ``keep(rel)``: True for a file whose bytes are also returned, in ``{rel: bytes}``.
    """
    sha, kept = hashlib.sha256(), {}
    for rel in files(root):
        sha.update(rel.encode(errors="surrogateescape") + b"\0")
        wanted = keep is not None and keep(rel)
        parts = []
        try:
            with open(Path(root) / rel, "rb", opener=_no_follow) as fh:
                while block := fh.read(BLOCK):
                    sha.update(block)
                    if wanted:
                        parts.append(block)
        except OSError:
            continue
        if wanted:
            kept[rel] = b"".join(parts)
    return sha.hexdigest(), kept


def _no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def remove(path):
    """Remove ``path`` and everything under it, whatever its depth and width; True if gone.

    Never follows a link, never raises: every subfolder is moved up into ``path`` itself
    and emptied there, so two folders at most are open at a time.
    """
    path = os.fspath(path)
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return True
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    token, moved = uuid.uuid4().hex, 0
    pending = [None]
    try:
        while pending:
            name = pending.pop()
            try:
                fd = top if name is None else os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                                      dir_fd=top)
            except OSError:
                continue
            try:
                with os.scandir(fd) as found:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in found]
                for entry, is_dir in entries:
                    try:
                        if not is_dir:
                            os.unlink(entry, dir_fd=fd)
                        elif name is None:
                            pending.append(entry)
                        else:
                            moved += 1
                            os.rename(entry, f".rm-{token}-{moved}", src_dir_fd=fd, dst_dir_fd=top)
                            pending.append(f".rm-{token}-{moved}")
                    except OSError:
                        pass
            except OSError:
                pass
            finally:
                if fd != top:
                    os.close(fd)
            if name is not None:
                try:
                    os.rmdir(name, dir_fd=top)
                except OSError:
                    pass
    finally:
        os.close(top)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
