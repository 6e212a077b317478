"""Issue 20 outcomes 1, 2 and 7, run as users run them (subprocesses in a project folder):
bare `check`/`test`/`fmt`/`routes`/`serve` in a `webpipe init` project, the app named by
webpipe.toml or `[tool.webpipe]`, the errors when no app can be chosen, `check DIR` and
`fmt DIR`, the Ruff-shaped `fmt` (`--diff`, `-`, `--check`), `webpipe version` and shell
completion (spec/cli.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MESSY = "GET   /a\n      |>   jq: `1`\n"
TIDY = "GET /a\n  |> jq: `1`\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webpipe(*args: str, cwd: Path, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m webpipe ARGS` in `cwd`, with no database settings and the embedded server
    off (a query a test forgot to mock fails instead of starting Postgres)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("WP_PG_") and k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "webpipe", *args], cwd=cwd, input=stdin,
                          env={**base, "WP_PG_EMBEDDED": "0", **(env or {})},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proj") / "notes"
    made = webpipe("init", str(root), cwd=root.parent)
    assert made.returncode == 0, made.stderr
    assert "  cd " in made.stdout and "  webpipe test " in made.stdout
    return root


# ---- outcome 1: the commands find the project --------------------------------------------


def test_init_writes_the_project_file(project: Path) -> None:
    assert 'app = "app.wp"' in (project / "webpipe.toml").read_text()


def test_bare_check_test_fmt_and_routes_in_an_init_project(project: Path) -> None:
    checked = webpipe("check", cwd=project)
    assert checked.returncode == 0, checked.stderr
    assert "1 file(s) checked: 0 error(s), 0 warning(s)" in checked.stderr
    tested = webpipe("test", cwd=project)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.startswith("Test Results: 7/7 passed (0 failed)")
    formatted = webpipe("fmt", "--check", cwd=project)
    assert formatted.returncode == 0, formatted.stderr
    assert "0 files would be reformatted, 1 file already formatted" in formatted.stderr
    routes = webpipe("routes", cwd=project)
    assert routes.returncode == 0, routes.stderr
    assert "GET    /api/health  (app.wp:" in routes.stdout


def test_bare_commands_work_from_a_folder_below_the_project(project: Path) -> None:
    routes = webpipe("routes", cwd=project / "public")
    assert routes.returncode == 0, routes.stderr
    assert f"POST   /api/notes  ({project.resolve() / 'app.wp'}:" in routes.stdout


def test_bare_db_and_jobs_commands_reach_the_database_step(project: Path) -> None:
    # the embedded server is off and nothing is configured: past the app argument, the
    # commands stop at the database with one clear line (`db url` raised a traceback)
    for args in (("db", "url"), ("jobs", "status"), ("migrate", "status")):
        done = webpipe(*args, cwd=project)
        assert done.returncode == 1, args
        assert "Database not configured" in done.stderr, args
        assert "Traceback" not in done.stderr and "Missing argument" not in done.stderr


def test_bare_serve_in_an_init_project(project: Path, tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "webpipe", "serve", "--port", str(port)],
                                cwd=project, stdout=log, stderr=subprocess.STDOUT)
        try:
            answer = _poll(f"http://127.0.0.1:{port}/api/health", proc)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    assert answer is not None, (tmp_path / "serve.log").read_text()
    assert answer.json() == {"status": "ok"}


def _poll(url: str, proc: subprocess.Popen[bytes], budget: float = 60) -> httpx.Response | None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.1)
    return None


def test_tool_webpipe_in_pyproject_names_the_app(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n'
                                             '[tool.webpipe]\napp = "src/main.wp"\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.wp").write_text("GET /from-pyproject\n  |> jq: `1`\n")
    (tmp_path / "other.wp").write_text("GET /not-this-one\n  |> jq: `1`\n")
    routes = webpipe("routes", cwd=tmp_path)
    assert routes.returncode == 0, routes.stderr
    assert "/from-pyproject  (src/main.wp:1:1)" in routes.stdout


def test_without_configuration_the_single_wp_file_is_the_app(tmp_path: Path) -> None:
    (tmp_path / "only.wp").write_text("GET /only\n  |> nosuch: `1`\n")
    checked = webpipe("check", cwd=tmp_path)
    assert checked.returncode == 1
    assert "only.wp:2:3: error: unknown middleware 'nosuch'" in checked.stderr


def test_several_wp_files_is_an_error_naming_them(tmp_path: Path) -> None:
    for name in ("b.wp", "a.wp"):
        (tmp_path / name).write_text(TIDY)
    for command in ("check", "test", "routes", "serve"):
        done = webpipe(command, cwd=tmp_path)
        assert done.returncode == 1, command
        assert f"which app? 2 .wp files in {tmp_path.resolve()}: a.wp, b.wp" in done.stderr
        assert 'write `app = "app.wp"` in webpipe.toml' in done.stderr


def test_no_wp_file_is_an_error_saying_how_to_configure(tmp_path: Path) -> None:
    done = webpipe("check", cwd=tmp_path)
    assert done.returncode == 1
    assert f"error: no app file: no *.wp file in {tmp_path.resolve()}" in done.stderr
    assert "[tool.webpipe] in pyproject.toml" in done.stderr


def test_a_bad_project_file_is_an_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "webpipe.toml"
    config.write_text('app = "missing.wp"\n')
    done = webpipe("routes", cwd=tmp_path)
    assert done.returncode == 1
    assert f"{config.resolve()}: the app file 'missing.wp' named in webpipe.toml does not " \
           "exist" in done.stderr
    config.write_text('ap = "app.wp"\n')
    done = webpipe("routes", cwd=tmp_path)
    assert "unknown key 'ap' in webpipe.toml (known: app)" in done.stderr


def test_check_dir_walks_the_folder_skipping_venvs_and_hidden_folders(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text('import "./lib/shared.wp" as shared\n\nGET /a\n'
                                     "  |> pipeline: shared::p\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shared.wp").write_text("pipeline p =\n  |> jqq: `1`\n")
    for skipped in ("node_modules", ".git", "env"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "bad.wp").write_text("GET /x\n  |> nosuch: `1`\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    done = webpipe("check", ".", cwd=tmp_path)
    assert done.returncode == 1
    # reported once, though checked on its own and through the app that imports it
    assert done.stderr.count("lib/shared.wp:2:3: error: unknown middleware 'jqq'") == 1
    assert "nosuch" not in done.stderr
    assert "2 file(s) checked: 1 error(s)" in done.stderr


def test_check_dir_without_wp_files_is_an_error(tmp_path: Path) -> None:
    done = webpipe("check", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert f"no .wp files under {tmp_path}" in done.stderr


# ---- outcome 2: a Ruff-shaped formatter ---------------------------------------------------


def test_fmt_diff_prints_a_unified_diff_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "app.wp").write_text(MESSY)
    done = webpipe("fmt", "--diff", "app.wp", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ("--- app.wp\n+++ app.wp\n@@ -1,2 +1,2 @@\n"
                           "-GET   /a\n-      |>   jq: `1`\n+GET /a\n+  |> jq: `1`\n")
    assert (tmp_path / "app.wp").read_text() == MESSY
    (tmp_path / "app.wp").write_text(TIDY)
    clean = webpipe("fmt", "--diff", "app.wp", cwd=tmp_path)
    assert (clean.returncode, clean.stdout) == (0, "")


def test_fmt_dash_reads_stdin_and_writes_stdout(tmp_path: Path) -> None:
    done = webpipe("fmt", "-", cwd=tmp_path, stdin=MESSY)
    assert (done.returncode, done.stdout) == (0, TIDY)
    assert webpipe("fmt", "--check", "-", cwd=tmp_path, stdin=MESSY).returncode == 1
    assert webpipe("fmt", "--check", "-", cwd=tmp_path, stdin=TIDY).returncode == 0
    diff = webpipe("fmt", "--diff", "--stdin-filename", "x.wp", "-", cwd=tmp_path, stdin=MESSY)
    assert diff.returncode == 1 and diff.stdout.startswith("--- x.wp\n+++ x.wp\n")


def test_fmt_dash_with_a_syntax_error_writes_nothing_and_exits_2(tmp_path: Path) -> None:
    done = webpipe("fmt", "--stdin-filename", "buf.wp", "-", cwd=tmp_path,
                   stdin="GET /a\n  |> jq: `1\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("buf.wp:2:") and "error: unclosed backtick" in done.stderr


def test_fmt_check_lists_the_files_that_would_change(tmp_path: Path) -> None:
    (tmp_path / "a.wp").write_text(MESSY)
    (tmp_path / "b.wp").write_text(TIDY)
    done = webpipe("fmt", "--check", "a.wp", "b.wp", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["would reformat a.wp",
                                        "1 file would be reformatted, 1 file already formatted"]
    assert (tmp_path / "a.wp").read_text() == MESSY


def test_fmt_dir_formats_every_file_and_reports_the_broken_one(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wp").write_text(MESSY)
    (tmp_path / "sub" / "broken.wp").write_text("GET /a\n  |> jq: `1\n")
    done = webpipe("fmt", "sub", cwd=tmp_path)
    assert done.returncode == 2
    assert "sub/broken.wp:2:" in done.stderr and "error: unclosed backtick" in done.stderr
    assert "1 file reformatted, 0 files left unchanged, 1 file could not be formatted" \
        in done.stderr
    assert (tmp_path / "sub" / "a.wp").read_text() == TIDY


def test_bare_fmt_formats_the_whole_project(tmp_path: Path) -> None:
    (tmp_path / "webpipe.toml").write_text('app = "app.wp"\n')
    (tmp_path / "app.wp").write_text('import "./lib/x.wp" as x\n\n' + TIDY)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.wp").write_text(MESSY)
    done = webpipe("fmt", cwd=tmp_path / "lib")  # from below the root: still the project
    assert done.returncode == 0, done.stderr
    assert "1 file reformatted, 1 file left unchanged" in done.stderr
    assert (tmp_path / "lib" / "x.wp").read_text() == TIDY


# ---- outcome 7: version and completion ----------------------------------------------------


def test_version_is_a_command_not_a_file(tmp_path: Path) -> None:
    from webpipe import __version__

    assert webpipe("version", cwd=tmp_path).stdout == f"webpipe {__version__}\n"
    assert webpipe("--version", cwd=tmp_path).stdout == f"webpipe {__version__}\n"
    typo = webpipe("verison", cwd=tmp_path)
    assert typo.returncode == 2
    assert "no such command or file 'verison'. Did you mean 'version'?" in typo.stderr


def test_shell_completion_completes_commands(tmp_path: Path) -> None:
    script = webpipe(cwd=tmp_path, env={"_WEBPIPE_COMPLETE": "bash_source"})
    assert "_webpipe_completion()" in script.stdout
    done = webpipe(cwd=tmp_path, env={"_WEBPIPE_COMPLETE": "bash_complete",
                                      "COMP_WORDS": "webpipe ch", "COMP_CWORD": "1"})
    assert done.stdout.split() == ["plain,check"]
    for shell in ("bash", "zsh", "fish"):
        printed = webpipe("completion", shell, cwd=tmp_path)
        assert printed.returncode == 0 and "_WEBPIPE_COMPLETE" in printed.stdout, shell
    assert printed.stdout == webpipe(cwd=tmp_path,
                                     env={"_WEBPIPE_COMPLETE": "fish_source"}).stdout
