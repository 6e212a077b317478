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


@pytest.mark.parametrize("path", ["a\0b.wp", "./\0"])
def test_import_path_with_a_nul_byte_is_a_diagnostic(tmp_path: Path, path: str) -> None:
    main = write(tmp_path, {"app.wp": f'# lib\nimport "{path}" as lib\n'})
    with pytest.raises(LoadError) as info:
        load_file(main)
    assert info.value.span is not None and info.value.span.line == 2
    assert "app.wp:2:1: error: unusable import path" in str(info.value)


def test_import_of_a_device_or_directory_is_refused_without_reading(tmp_path: Path) -> None:
    for target in ("/dev/zero", "."):
        main = write(tmp_path, {"app.wp": f'import "{target}" as x\n'})
        with pytest.raises(LoadError, match="not a regular file") as info:
            load_file(main)
        assert info.value.span is not None


def test_files_that_are_not_utf8_are_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "lib.wp").write_bytes(b"pg q = `SELECT '\xff'`\n")
    main = write(tmp_path, {"app.wp": 'import "./lib.wp" as lib\n'})
    with pytest.raises(LoadError, match=r"cannot import ./lib.wp: not UTF-8 text \(byte 16\)"):
        load_file(main)
    with pytest.raises(LoadError, match="not UTF-8 text"):
        load_file(tmp_path / "lib.wp")


def test_a_parameter_named_twice_is_refused_at_the_path(tmp_path: Path) -> None:
    main = write(tmp_path, {"app.wp": "GET /ok\n  |> jq: `1`\n\nGET /a/:id/b/:id\n  |> jq: `1`\n"})
    with pytest.raises(LoadError, match="names the parameter 'id' twice") as info:
        load_file(main)
    span = info.value.span
    assert span is not None and (span.line, span.column, span.end_column) == (4, 5, 17)



def test_fmt_reports_an_unreadable_file(tmp_path: Path) -> None:
    from webpipe.syntax.fmt import format_file
    (tmp_path / "bad.wp").write_bytes(b"GET /a\n  |> jq: `\"\xff\"`\n")
    with pytest.raises(LoadError, match=r"bad.wp: not UTF-8 text \(byte 18\)"):
        format_file(tmp_path / "bad.wp")
