"""Migration files: `<app dir>/migrations/<YYYYMMDDHHMMSS>_<name>.sql` (middleware.md §17).

A file holds an `-- UP --` section and, after it, a `-- DOWN --` section. Markers are
matched case-insensitively on a line of their own (text after the closing `--` is a comment).
Only comments may come before `-- UP --`. Files whose names do not follow the pattern are
skipped with a warning; two files with one version are an error. Nothing here touches the
database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from webpipe.errors import WebpipeError

MIGRATIONS_DIR = "migrations"
VERSION_FORMAT = "%Y%m%d%H%M%S"
FILE_NAME = re.compile(r"(\d{14})_(.+)\.sql")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
MARKER = re.compile(r"^[ \t]*--[ \t]*(UP|DOWN)[ \t]*--[^\n]*$", re.IGNORECASE | re.MULTILINE)
TEMPLATE = "-- UP --\n\n\n-- DOWN --\n\n"

Warn = Callable[[str], None]


class MigrationError(WebpipeError):
    """A migration file, the tracking table or a migration's SQL is in the way."""

    code = "migration"


@dataclass(frozen=True, slots=True)
class Section:
    """One side of a migration: the SQL text and the file line it starts on."""

    sql: str
    line: int

    @property
    def empty(self) -> bool:
        return not self.sql.strip()


@dataclass(frozen=True, slots=True)
class Migration:
    """One parsed migration file."""

    version: str
    name: str
    path: Path
    up: Section
    down: Section
    checksum: str  # sha256 of the file's bytes

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def migrations_dir(app: Path) -> Path:
    """`<dir of the app file>/migrations`."""
    return app.resolve().parent / MIGRATIONS_DIR


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def next_version(directory: Path, now: datetime | None = None) -> str:
    """The current UTC time as a version, moved past the newest file so it sorts last."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    versions = [m.group(1) for p in _sql_files(directory)
                if (m := FILE_NAME.fullmatch(p.name))]
    if versions:
        newest = datetime.strptime(max(versions), VERSION_FORMAT).replace(tzinfo=UTC)
        moment = max(moment, newest + timedelta(seconds=1))
    return moment.strftime(VERSION_FORMAT)


def create_migration(directory: Path, name: str, *, now: datetime | None = None,
                     text: str = TEMPLATE) -> Path:
    """Write `<version>_<name>.sql` with empty UP/DOWN sections (or `text`); return it."""
    if not NAME.fullmatch(name):
        raise MigrationError(f"migration name {name!r} may only use letters, digits, "
                             "'_' and '-', and must start with a letter or digit")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{next_version(directory, now)}_{name}.sql"
    with path.open("x", encoding="utf-8") as out:  # "x": never replace a file
        out.write(text)
    return path


def parse_sections(text: str, filename: str) -> tuple[Section, Section]:
    """Split a file into its UP and DOWN sections; MigrationError names what is wrong."""
    markers = [(m.group(1).upper(), m) for m in MARKER.finditer(text)]
    kinds = [kind for kind, _ in markers]
    if kinds != ["UP", "DOWN"]:
        raise MigrationError(f"{filename}: {_marker_problem(kinds)}")
    (_, up), (_, down) = markers
    if _has_sql(text[:up.start()]):
        raise MigrationError(f"{filename}: SQL before '-- UP --' would never run; "
                             "move it into a section")
    return (_section(text, up.end(), down.start()), _section(text, down.end(), len(text)))


def _marker_problem(kinds: list[str]) -> str:
    for kind in ("UP", "DOWN"):
        if kinds.count(kind) == 0:
            return f"missing the '-- {kind} --' marker"
        if kinds.count(kind) > 1:
            return f"more than one '-- {kind} --' marker"
    return "'-- DOWN --' must come after '-- UP --'"


def _section(text: str, start: int, end: int) -> Section:
    # the section starts after the marker line's newline; keep its text as written so
    # server error positions map back onto file lines
    if text.startswith("\n", start):
        start += 1
    return Section(text[start:end], text.count("\n", 0, start) + 1)


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--")
               for line in text.splitlines())


def load_migrations(directory: Path, warn: Warn | None = None) -> list[Migration]:
    """Every well-named migration in `directory`, in version order (none if it is missing)."""
    found: dict[str, Migration] = {}
    for path in _sql_files(directory):
        match = FILE_NAME.fullmatch(path.name)
        if match is None:
            if warn is not None:
                warn(f"skipping {path.name}: migration files are named "
                     "<YYYYMMDDHHMMSS>_<name>.sql")
            continue
        migration = read_migration(path, match.group(1), match.group(2))
        if (twin := found.get(migration.version)) is not None:
            raise MigrationError(f"{twin.filename} and {path.name} have the same version "
                                 f"{migration.version}; rename one")
        found[migration.version] = migration
    return [found[version] for version in sorted(found)]


def read_migration(path: Path, version: str, name: str) -> Migration:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"{path.name}: not UTF-8 ({exc.reason} at byte {exc.start})"
                             ) from None
    up, down = parse_sections(text, path.name)
    return Migration(version, name, path, up, down, checksum(data))


def _sql_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".sql" and p.is_file())
