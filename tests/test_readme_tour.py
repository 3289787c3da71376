"""README's "A 5-minute tour", run word for word as a newcomer would after `scripts/serve`.

The platform is started the way `scripts/serve` starts it: `.venv/bin/spacehub serve` in a folder
holding `examples/` and `.venv`, data in `./.spacehub`, the admin token generated there. Two
explicit differences: `--runtime local` (no Docker needed) and a free port instead of 8000 (the
only change made to the blocks' text). Each `sh` block runs with `bash -e`, each `python` block
with `.venv/bin/python`, in order, in that folder; `export` lines carry over to later blocks.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    EXAMPLES,
    Platform,
    explain_failure,
    free_port,
    stop_cleanly,
    wait_for,
)

REPO = EXAMPLES.parent
TOUR_PORT = ":8000"  # what the tour's text says; replaced by the test platform's port
BLOCK_TIMEOUT = 300  # the Gradio block waits for a first build (uv downloads Gradio once)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    language: str
    code: str
    skipped: bool


def tour_blocks(readme: str) -> list[Block]:
    """The fenced blocks of the tour section, in order, with the README's skip marks."""
    section = readme.split("\n## A 5-minute tour\n", 1)[1].split("\n## ", 1)[0]
    blocks, previous_end = [], 0
    for fence in FENCE.finditer(section):
        between = section[previous_end : fence.start()]
        blocks.append(Block(fence.group(1), fence.group(2), "<!-- tour: skip" in between))
        previous_end = fence.end()
    return blocks


def test_tour_blocks_are_found_and_only_the_ssh_one_is_skipped() -> None:
    blocks = tour_blocks((REPO / "README.md").read_text())
    languages = ["sh", "python", "sh", "sh", "python", "sh", "python"]
    assert [block.language for block in blocks] == languages
    assert [block.skipped for block in blocks] == [False, False, False, True, False, False, False]
    assert "ssh://" in blocks[3].code


def clean_environment(home: Path) -> dict[str, str]:
    """The user's shell: no spacehub or Hub settings of the test run, a git identity."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SPACEHUB_", "HF_", "HUGGINGFACE_", "GRADIO_", "GIT_"))
    }
    return {
        **env,
        "HOME": str(home),
        "GIT_AUTHOR_NAME": "Ann Example",
        "GIT_AUTHOR_EMAIL": "ann@example.com",
        "GIT_COMMITTER_NAME": "Ann Example",
        "GIT_COMMITTER_EMAIL": "ann@example.com",
        "GIT_TERMINAL_PROMPT": "0",
    }


def kill_local_apps(data: Path) -> None:
    """Apps outlive their platform by design: end the ones the tour started."""
    for record in (data / "run" / "local").glob("*.json"):
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError, KeyError):
            os.killpg(json.loads(record.read_text())["pid"], signal.SIGKILL)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Platform]:
    """A folder laid out like a clone after `scripts/serve`, and the platform serving from it."""
    folder = tmp_path / "spacehub clone"
    folder.mkdir()
    shutil.copytree(EXAMPLES, folder / "examples")
    (folder / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "home").mkdir()
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {**clean_environment(Path.home()), "SPACEHUB_SSH_PORT": str(free_port())}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [".venv/bin/spacehub", "serve", "--port", str(port), "--runtime", "local"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Platform(f"http://127.0.0.1:{port}", port, folder / ".spacehub", process, log_path)
    explain_failure(request.node, "spacehub serve log", lambda: running.log()[-6000:])
    try:
        wait_for(
            lambda: process.poll() is None and httpx.get(f"{running.url}/api/health").is_success,
            60,
            "spacehub serve to answer",
        )
        yield running
    finally:
        try:
            stop_cleanly(running)
        finally:
            kill_local_apps(running.data_dir)


def as_run(block: Block, port: int) -> str:
    """The block's text with the test platform's port in place of the tour's (the one change)."""
    return block.code.replace(TOUR_PORT, f":{port}")


def run_block(block: Block, exports: list[str], folder: Path, env: dict[str, str], port: int):
    code = as_run(block, port)
    if block.language == "python":
        script = folder.parent / "block.py"
        script.write_text(code)
        code = f".venv/bin/python {script.as_posix()!r}\n"
    return subprocess.run(
        ["bash", "-e", "-c", "\n".join([*exports, code])],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )


def test_the_tour_works_word_for_word(served: Platform, request: pytest.FixtureRequest) -> None:
    blocks = tour_blocks((REPO / "README.md").read_text())
    env = clean_environment(served.data_dir.parent.parent / "home")
    exports: list[str] = []
    transcript: list[str] = []
    explain_failure(request.node, "the tour's transcript", lambda: "\n".join(transcript)[-8000:])
    started = time.monotonic()
    outputs = []
    for block in blocks:
        if block.skipped:
            continue
        begun = time.monotonic()
        result = run_block(block, exports, served.data_dir.parent, env, served.port)
        transcript.append(
            f"$ ({block.language}, {time.monotonic() - begun:.1f} s, exit {result.returncode})\n"
            f"{block.code}{result.stdout}{result.stderr}"
        )
        assert result.returncode == 0, transcript[-1]
        code = as_run(block, served.port)
        exports += [line for line in code.splitlines() if line.startswith("export ")]
        outputs.append(result.stdout)
    print(f"\nthe tour ran in {time.monotonic() - started:.1f} s")

    # The Gradio block's own output: the prediction the tour promises, then the build log.
    greet_output = outputs[-1]
    assert "Hello Ann!!" in greet_output.splitlines(), greet_output
    assert "gradio" in greet_output.split("Hello Ann!!", 1)[1], greet_output

    # "Open it a moment later, in either URL form": the example's page, as a browser gets it.
    page = (EXAMPLES / "static-site" / "index.html").read_text()
    base = served.url
    by_path = wait_for(
        lambda: (
            (answer := httpx.get(f"{served.apps_url}/apps/admin/hello/")).status_code == 200
            and answer
        ),
        30,
        "the static page in the path form",
    )
    assert by_path.text == page
    by_host = httpx.get(f"{base}/", headers={"Host": f"admin-hello.localhost:{served.port}"})
    assert by_host.status_code == 200, by_host.text
    assert by_host.text == page
