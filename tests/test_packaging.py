"""The wheel ships the grammar where the parser looks for it (STYLE.md: grammar location)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_the_grammar(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    [wheel] = tmp_path.glob("webpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "webpipe/grammar/webpipe.lark" in names
    packaged = zipfile.ZipFile(wheel).read("webpipe/grammar/webpipe.lark").decode()
    assert packaged == (ROOT / "grammar" / "webpipe.lark").read_text()


def test_installed_parser_finds_a_grammar() -> None:
    from webpipe.syntax.parser import grammar_path

    assert grammar_path().read_text().startswith("// Web Pipe grammar")
