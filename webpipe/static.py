"""Static files from the public directory (language.md §9.2).

`resolve_static()` maps a raw URL path onto a regular file inside the public directory, or None:
the path is percent-decoded, any `..` component is refused, directories map to their
`index.html`, and the real path (symlinks resolved) must stay inside the directory. Dotfiles
and dot-folders (`.env`, `.git/config`) are not served unless the app opts in
(`config static { dotfiles: true }`), whether named in the URL or reached through a symlink.
`static_response()` sends the file with the content type of its extension. The server calls
both for GET requests only. Decisions: spec/http.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_to_bytes

from starlette.responses import FileResponse, Response

INDEX = "index.html"

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def resolve_static(public_dir: Path, url_path: str, *, dotfiles: bool = False) -> Path | None:
    """The file to serve for `url_path` (raw, percent-encoded), or None if it is not static.
    Without `dotfiles`, a path with a component starting with `.` is never static."""
    parts = _path_parts(url_path)
    root = _real_dir(public_dir)
    if parts is None or root is None or (not dotfiles and _hidden(parts)):
        return None
    # `/` and `/dir/` name a directory's index page.
    wants_index = not parts or url_path.endswith("/")
    candidate = root.joinpath(*parts, INDEX) if wants_index else root.joinpath(*parts)
    found = _inside(root, candidate)
    # An extension-less path that is no file (in practice: a directory) tries its index page.
    if found is None and not wants_index and not PurePosixPath(parts[-1]).suffix:
        found = _inside(root, candidate / INDEX)
    if found is not None and not dotfiles and _hidden(found.relative_to(root).parts):
        return None  # a symlink leading to a dotfile
    return found


def _hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") for part in parts)


def static_response(path: Path) -> Response:
    """Send `path` with status 200 and the content type of its extension.

    The file is read off the event loop in chunks (Starlette's `FileResponse`), which also adds
    `ETag`, `Last-Modified` and byte-range support.
    """
    return FileResponse(path, media_type=content_type_for(path))


def content_type_for(path: Path) -> str:
    """The §9.2 content type for a file name, by lower-cased extension."""
    return CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE)


def _path_parts(url_path: str) -> list[str] | None:
    """Decoded, non-empty path components; None for bad UTF-8, NUL or any `..` component."""
    if not url_path.startswith("/"):
        return None
    try:
        decoded = unquote_to_bytes(url_path).decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = [part for part in decoded.split("/") if part not in ("", ".")]
    if ".." in parts or "\x00" in decoded:
        return None
    return parts


def _real_dir(public_dir: Path) -> Path | None:
    try:
        root = public_dir.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return root if root.is_dir() else None


def _inside(root: Path, candidate: Path) -> Path | None:
    """The real path of `candidate` if it is a regular file inside `root` after symlinks."""
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    return real
