"""Imports: aliases, qualified and bare name resolution, and errors naming the import."""

from __future__ import annotations

from pathlib import Path

import pytest

from webpipe.errors import LoadError
from webpipe.loader import load_file


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp / next(iter(files))


def test_imports_resolve_relative_and_load_once(tmp_path: Path) -> None:
    main = write(tmp_path, {
        "app.wp": 'import "./lib/a.wp" as a\nimport "./lib/b.wp" as b\n',
        "lib/a.wp": 'import "./b.wp" as bee\npg q = `SELECT 1`\n',
        "lib/b.wp": 'pipeline shared =\n  |> jq: `1`\n',
    })
    index = load_file(main)
    assert len(index.modules) == 3
    assert index.main.aliases["b"] is index.main.aliases["a"].aliases["bee"]


def test_qualified_and_bare_lookups(tmp_path: Path) -> None:
    main = write(tmp_path, {
        "app.wp": 'import "./lib.wp" as lib\npg local = `SELECT 2`\n',
        "lib.wp": 'pg q = `SELECT 1`\npipeline p =\n  |> jq: `1`\n',
    })
    index = load_file(main)
    assert index.variable(index.main, "pg", "lib::q").body == "SELECT 1"  # type: ignore[union-attr]
    assert index.variable(index.main, "pg", "q") is not None  # bare names leak (parity)
    assert index.variable(index.main, "jq", "q") is None  # type must match
    assert index.pipeline(index.main, "lib::p") is not None
    assert index.pipeline(index.main, "nope::p") is None


def test_missing_import_names_the_import_line(tmp_path: Path) -> None:
    main = write(tmp_path, {"app.wp": 'GET /a\n\nimport "./gone.wp" as gone\n'})
    with pytest.raises(LoadError) as info:
        load_file(main)
    assert "imported file not found: ./gone.wp" in info.value.message
    assert info.value.span is not None and info.value.span.line == 3


def test_import_cycle(tmp_path: Path) -> None:
    main = write(tmp_path, {"app.wp": 'import "./b.wp" as b\n', "b.wp": 'import "./app.wp" as a\n'})
    with pytest.raises(LoadError) as info:
        load_file(main)
    assert info.value.message == "import cycle: app.wp -> b.wp -> app.wp"
    assert info.value.span is not None and info.value.span.source.name.endswith("b.wp")


def test_duplicate_alias(tmp_path: Path) -> None:
    main = write(tmp_path, {"app.wp": 'import "./b.wp" as x\nimport "./c.wp" as x\n',
                            "b.wp": "", "c.wp": ""})
    with pytest.raises(LoadError) as info:
        load_file(main)
    assert info.value.message == "duplicate import alias 'x'"
    assert info.value.span is not None and info.value.span.line == 2


def test_syntax_error_in_import_points_into_that_file(tmp_path: Path) -> None:
    main = write(tmp_path, {"app.wp": 'import "./b.wp" as b\n', "b.wp": "GET /x\n  jq: `1`\n"})
    with pytest.raises(Exception) as info:
        load_file(main)
    assert "b.wp:2:3: error: missing `|>`" in str(info.value)
