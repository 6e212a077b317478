"""Load a `.wp` file and its imports into a `ProgramIndex` of lookups.

Imports resolve relative to the importing file, are loaded once each, and cycles or
missing files are errors that point at the `import` line. Name resolution follows
spec/language.md §3.6: an unqualified name is looked up in the step's own module first,
then in a global table of every module (the module whose path sorts last wins a clash);
`alias::name` looks in the module that alias points to (see spec/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from webpipe.errors import LoadError
from webpipe.routing import path_problem
from webpipe.source import Source
from webpipe.syntax import nodes as n
from webpipe.syntax.parser import parse


@dataclass(eq=False)
class Module:
    """One loaded file: its AST and the modules its aliases point to."""

    path: Path
    source: Source
    program: n.Program
    aliases: dict[str, Module] = field(default_factory=dict)
    is_main: bool = False

    def items(self, kind: type[n.Item]) -> Iterator[n.Item]:
        return (item for item in self.program.items if isinstance(item, kind))


@dataclass(eq=False)
class ProgramIndex:
    """Every module of a program plus the lookup tables derived from them."""

    main: Module
    modules: list[Module]
    variables: dict[tuple[Module, str, str], n.Variable] = field(default_factory=dict)
    global_variables: dict[tuple[str, str], n.Variable] = field(default_factory=dict)
    pipelines: dict[tuple[Module, str], n.NamedPipeline] = field(default_factory=dict)
    global_pipelines: dict[str, n.NamedPipeline] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for module in self.modules:
            for item in module.program.items:
                if isinstance(item, n.Variable):
                    self.variables[module, item.kind, item.name] = item
                    self.global_variables[item.kind, item.name] = item
                elif isinstance(item, n.NamedPipeline):
                    self.pipelines[module, item.name] = item
                    self.global_pipelines[item.name] = item

    def module_of(self, item: n.Item) -> Module:
        """The module that declares `item` (the very node, not an equal one)."""
        return next(module for module in self.modules
                    if any(own is item for own in module.program.items))

    def variable(self, module: Module, kind: str, name: str) -> n.Variable | None:
        """Variable (kind, name) as seen from `module`; `alias::name` allowed."""
        alias, sep, bare = name.partition("::")
        if sep:
            target = module.aliases.get(alias)
            return self.variables.get((target, kind, bare)) if target else None
        local = self.variables.get((module, kind, name))
        return local or self.global_variables.get((kind, name))

    def pipeline(self, module: Module, name: str) -> n.NamedPipeline | None:
        alias, sep, bare = name.partition("::")
        if sep:
            target = module.aliases.get(alias)
            return self.pipelines.get((target, bare)) if target else None
        return self.pipelines.get((module, name)) or self.global_pipelines.get(name)

    def pipeline_names(self, module: Module) -> set[str]:
        """Every name `module` can call a pipeline by (for did-you-mean suggestions)."""
        return {name for _, name in self.pipelines} | _qualified(module, self.pipelines)

    def variable_names(self, module: Module, kind: str) -> set[str]:
        """Every name `module` can use a `kind` variable by (for suggestions)."""
        table = {(m, name): v for (m, k, name), v in self.variables.items() if k == kind}
        return {name for _, name in table} | _qualified(module, table)

    def all_items(self, kind: type[n.Item]) -> Iterator[tuple[Module, n.Item]]:
        for module in self.modules:
            for item in module.program.items:
                if isinstance(item, kind):
                    yield module, item

    def routes(self) -> Iterator[tuple[Module, n.Route]]:
        for module, item in self.all_items(n.Route):
            assert isinstance(item, n.Route)
            yield module, item

    def config_modules(self) -> list[Module]:
        """Modules whose config blocks count: direct imports first, then the main file."""
        direct = [m for m in self.main.aliases.values() if m is not self.main]
        return [*direct, self.main]


def _qualified(module: Module, table: Iterable[tuple[Module, str]]) -> set[str]:
    """`alias::name` for every name in `table` that one of `module`'s aliases reaches."""
    return {f"{alias}::{name}" for alias, target in module.aliases.items()
            for owner, name in table if owner is target}


def load_source(source: Source, path: Path | None = None, *,
                program: n.Program | None = None) -> ProgramIndex:
    """Load a program from text (imports resolve relative to `path`, default cwd);
    `program` is the source already parsed (what syntax recovery kept of it)."""
    loader = _Loader()
    main = loader.load_module(source, (path or Path.cwd() / source.name).resolve(), (),
                              program)
    main.is_main = True
    modules = sorted(loader.done.values(), key=lambda m: str(m.path))
    return ProgramIndex(main=main, modules=modules)


def load_file(path: str | Path) -> ProgramIndex:
    """Load a `.wp` file and everything it imports."""
    file = Path(path)
    return load_source(Source.from_text(_display_path(file.resolve()), read_file(file)), file)


def read_file(file: Path) -> str:
    """The text of a `.wp` file named on the command line; `LoadError` when unreadable."""
    try:
        return read_wp(file)
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {file}: {_reason(exc)}") from None


def read_wp(path: Path) -> str:
    """A `.wp` file's text; only regular files (a device or a FIFO would never end), and
    only UTF-8 (`UnicodeDecodeError` is a `ValueError`)."""
    if path.exists() and not path.is_file():
        raise IsADirectoryError(0, "not a regular file") if path.is_dir() else \
            OSError(0, "not a regular file")
    return path.read_text(encoding="utf-8")


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class _Loader:
    def __init__(self) -> None:
        self.done: dict[Path, Module] = {}

    def load_module(self, source: Source, path: Path, chain: tuple[Path, ...],
                    program: n.Program | None = None) -> Module:
        module = Module(path=path, source=source, program=program or parse(source))
        self.done[path] = module
        for route in module.items(n.Route):
            assert isinstance(route, n.Route)
            problem = path_problem(route.path)
            if problem is not None:
                at = source.text.find(route.path, route.span.start)
                span = source.span(at, at + len(route.path)) if at >= 0 else route.span
                raise LoadError(problem, span=span)
        for item in module.items(n.Import):
            assert isinstance(item, n.Import)
            if item.alias in module.aliases:
                raise LoadError(f"duplicate import alias {item.alias!r}", span=item.span)
            module.aliases[item.alias] = self.load_import(item, path, (*chain, path))
        return module

    def load_import(self, item: n.Import, importer: Path, chain: tuple[Path, ...]) -> Module:
        try:
            target = (importer.parent / item.path).resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, symlink loops
            raise LoadError(f"unusable import path {item.path!r}: {exc}",
                            span=item.span) from None
        if target in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
            raise LoadError(f"import cycle: {cycle}", span=item.span)
        if target in self.done:
            return self.done[target]
        try:
            text = read_wp(target)
        except FileNotFoundError:
            raise LoadError(f"imported file not found: {item.path} (looked for {target})",
                            span=item.span) from None
        except (OSError, ValueError) as exc:
            raise LoadError(f"cannot import {item.path}: {_reason(exc)}",
                            span=item.span) from None
        return self.load_module(Source.from_text(_display_path(target), text), target, chain)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
