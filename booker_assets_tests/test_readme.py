"""The README is a test: every ```bash block runs, in order, as a user would type it.

One simulated terminal: the blocks run one after another in a scratch copy of the repository
that shares this ``.venv``, each block's exports carried to the next. What the README says about
it (its "Tests" section) is what this file does:

- ``make demo`` runs for real, with ``DAYS=2``; ``make test`` is not run from inside itself.
- ``<!-- docs-test: serves -->`` before a block: a server; it must print that it serves (and
  answer on the URL it prints), then gets Ctrl-C.
- ``<!-- docs-test: skip REASON -->`` before a block: not run; the reason is printed.
- A Booker account is played by a sandbox this test starts: ``export NAME=...`` takes its
  credentials, and its URL stands for the default base URL of the blocks that export them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from booker_assets.defs.storage import connect_locked
from booker_sandbox import BookerSandbox, SandboxSettings

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"^<!-- docs-test: (?P<mode>serves|skip)(?P<reason>[^>]*?) -->$", re.M)
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
SHELL_LANGS = {"", "sh", "shell", "console", "zsh", "bash-session", "shell-session"}
NOT_RUN = {"make test": "the test suite itself (.ci/run runs it)"}
PLACEHOLDER = re.compile(r"^(?P<head>\s*export\s+(?P<name>\w+))=\.\.\.(?=\s|$)", re.M)
SERVING = re.compile(r"serving\b.*?(?P<url>http://127\.0\.0\.1:\d+)", re.I)
BLOCK_SECONDS = 900
SERVE_SECONDS = 300


@dataclass(frozen=True)
class Block:
    line: int  # of the fence in README.md
    code: str
    mode: str  # run, serves or skip
    reason: str = ""


def readme_blocks(text: str) -> list[Block]:
    """Every ```bash block, with the docs-test marker on the line right before its fence."""
    blocks = []
    for fence in FENCE.finditer(text):
        lang = fence["lang"]
        line = text.count("\n", 0, fence.start()) + 1
        if lang in SHELL_LANGS:
            pytest.fail(f"README.md:{line}: a ```{lang} block: write ```bash (it is run) or "
                        f"```text (it is not)")
        if lang != "bash":
            continue
        before = text[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before)
        blocks.append(Block(line, fence["code"], marker["mode"] if marker else "run",
                            marker["reason"].strip() if marker else ""))
    return blocks


def test_the_readme_blocks_are_all_found() -> None:
    """A docs-test that finds nothing would pass: the parser must see what the README holds."""
    text = README.read_text()
    blocks = readme_blocks(text)
    assert text.count("```bash\n") == len(blocks)
    assert len(MARKER.findall(text)) == sum(b.mode != "run" for b in blocks)  # none misplaced
    assert blocks[0].code.startswith("make demo") and "make test" in blocks[0].code
    assert {"serves", "skip", "run"} <= {b.mode for b in blocks}
    assert all(b.reason for b in blocks if b.mode == "skip")


def _scratch_copy(destination: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored) with this ``.venv`` linked:
    what a fresh clone after ``make install`` holds. Times are kept, so make installs nothing."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(REPO / ".venv")
    return destination


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _restore_signals() -> None:
    # Ctrl-C must reach the server even when pytest was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _with_account(block: Block, account: dict[str, str], env: dict[str, str]) -> str:
    """``export NAME=...`` takes the account's value; the account's URL stands for the base URL
    default (the real one cannot be reached from here)."""
    def value(match: re.Match) -> str:
        name = match["name"]
        assert name in account, f"README.md:{block.line}: {name}=... but no account value"
        return f"{match['head']}={account[name]}"

    code, count = PLACEHOLDER.subn(value, block.code)
    if count:
        env.setdefault("BOOKER_BASE_URL", account["BOOKER_BASE_URL"])
    return code


def _runnable(code: str) -> str:
    lines = []
    for line in code.splitlines():
        reason = NOT_RUN.get(line.split("#", 1)[0].strip())
        lines.append(f": 'not run here: {reason}'" if reason else line)
    return "\n".join(lines)


def _run(block: Block, code: str, cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """Run a block in bash; the environment it ends with (its exports) for the next."""
    saved = cwd.parent / "env.out"
    script = f"set -euo pipefail\n{code}\nenv -0 > '{saved}'\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=BLOCK_SECONDS, stdin=subprocess.DEVNULL)
    if done.returncode:
        pytest.fail(f"README.md:{block.line} failed ({done.returncode}):\n{block.code}\n"
                    f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    carried = dict(item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item)
    return {k: v for k, v in carried.items() if k not in ("SHLVL", "_", "PWD", "OLDPWD")}


def _answers(url: str, block: Block) -> None:
    """``url`` answers HTTP (any status) within a minute of the server saying it serves."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with contextlib.suppress(urllib.error.HTTPError):  # an answer all the same
                urllib.request.urlopen(url, timeout=10).close()
            return
        except (urllib.error.URLError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"README.md:{block.line} said it serves at {url}: {exc}")
            time.sleep(1)


def _serve(block: Block, code: str, cwd: Path, env: dict[str, str]) -> str:
    """Start a server block, wait until it says it serves and answers there, then Ctrl-C."""
    process = subprocess.Popen(["bash", "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True, preexec_fn=_restore_signals)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=lambda: [*map(lines.put, process.stdout), lines.put(None)],
                              daemon=True)
    reader.start()
    seen, serving, deadline = [], None, time.monotonic() + SERVE_SECONDS
    try:
        while serving is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            serving = SERVING.search(line)
        if serving is None:
            pytest.fail(f"README.md:{block.line} never said it serves:\n{''.join(seen)[-3000:]}")
        _answers(serving["url"], block)
        return serving["url"]
    finally:
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as in the terminal
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # what outlives it (code servers)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_every_readme_command_works(tmp_path: Path) -> None:
    clone = _scratch_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    env |= {"DAYS": "2", "PORT": str(_free_port()), "SANDBOX_PORT": str(_free_port())}
    report = []
    with BookerSandbox(SandboxSettings()) as account_sandbox:
        account = {f"BOOKER_{field.upper()}": value
                   for field, value in account_sandbox.credentials.items()}
        account["BOOKER_BASE_URL"] = account_sandbox.url
        for block in readme_blocks(README.read_text()):
            started = time.monotonic()
            if block.mode == "skip":
                report.append(f"README.md:{block.line} skipped: {block.reason}")
                continue
            code = _runnable(_with_account(block, account, env))
            if block.mode == "serves":
                url = _serve(block, code, clone, env)
                report.append(f"README.md:{block.line} served at {url}")
            else:
                env = _run(block, code, clone, env)
                report.append(f"README.md:{block.line} ran")
            report[-1] += f" ({time.monotonic() - started:.1f} s)"
        requests = account_sandbox.stats.requests
    print("\n" + "\n".join(report))
    assert requests > 0  # the account's block reached the account
    # the backfill block loaded its range (June 2025 of 1001 and 1002) into the clone's file
    with connect_locked(str(clone / "data" / "booker_assets.duckdb"), read_only=True) as conn:
        loaded = conn.execute("SELECT DISTINCT location_id FROM booker.orders WHERE report_date"
                              " BETWEEN '2025-06-01' AND '2025-06-30' ORDER BY 1").fetchall()
    assert loaded == [(1001,), (1002,)]
    assert (clone / "data" / "demo.log").stat().st_size > 0
