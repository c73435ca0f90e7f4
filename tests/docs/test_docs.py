"""Every fenced code block in docs/**/*.md and README.md is run, checked, or marked why not.

The convention (docs/README.md repeats it for writers). The info string of a fence is
the language, then flags separated by spaces:

    ```python                          run in a fresh `python -c` subprocess, cwd = a new
                                       temporary directory, 60 s; must exit 0
    ```python needs-driver             as above, but skipped (with that reason, never
                                       silently) until `paxdb.connect` exists
    ```python walkthrough needs-driver run by test_tutorial_walkthrough against the live
                                       3-node cluster it starts, ports substituted
    ```sh run                          every line starting with `$ ` is a command, run
    ```console run                     with bash in one temporary directory per block;
                                       it must exit 0, or N if the line ends `# exit N`;
                                       the lines after a command are expected output:
                                       each must appear, in order, in stdout + stderr
                                       (`...` matches anything; blank lines are ignored)
    ```sh no-run: REASON               not run; REASON is required and says why
    ```sh walkthrough                  its `paxdb serve` and `paxdb status` commands are
                                       run by test_tutorial_walkthrough on free ports
    ```toml / ```json                  parsed (tomllib / json); must be valid
    ```text / ```ini                   not code: diagrams, sample output, unit files

A fence with no language, an unknown language, or a sh/console block with none of
`run`, `no-run: REASON` or `walkthrough` fails `test_every_block_is_classified`, so no
block is ever skipped silently. README.md follows the same convention.

Processes: every `paxdb serve` started here is stopped by its PID, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import paxdb
from paxdb.demo import EPHEMERAL_PORT_MIN, port_is_free

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial" / "getting-started.md"
BLOCK_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 60

PYTHON_LANGUAGES = {"python", "py"}
SHELL_LANGUAGES = {"sh", "console", "bash", "shell"}
PARSED_LANGUAGES = {"toml", "json"}
TEXT_LANGUAGES = {"text", "ini"}
KNOWN_FLAGS = {"run", "no-run", "needs-driver", "walkthrough"}

# README.md is the lead's file; these blocks predate the convention. Key: the block's
# first line. Remove an entry once README.md marks the block itself.

_FENCE = re.compile(r"^(`{3,})(.*)$")
_EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence.
    language: str
    flags: tuple[str, ...]
    reason: str  # The text after `no-run:`.
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def first_line(self) -> str:
        lines = self.text.strip().splitlines()
        return lines[0].removeprefix("$ ").strip() if lines else ""


def parse_info(info: str) -> tuple[str, tuple[str, ...], str]:
    """`sh no-run: starts a server` -> ("sh", ("no-run",), "starts a server")."""
    head, sep, reason = info.partition("no-run:")
    words = head.split()
    language = words[0].lower() if words else ""
    flags = tuple(words[1:]) + (("no-run",) if sep else ())
    return language, flags, reason.strip()


def collect(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, info = match.groups()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].startswith(fence):
            body.append(lines[index])
            index += 1
        assert index < len(lines), f"{path}:{start + 1}: unclosed code fence"
        language, flags, reason = parse_info(info)
        blocks.append(Block(path, start + 1, language, flags, reason, "\n".join(body) + "\n"))
        index += 1
    return blocks


def all_blocks() -> list[Block]:
    paths = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    return [block for path in paths if path.exists() for block in collect(path)]


BLOCKS = all_blocks()


def classify(block: Block) -> str:
    """One of: run, needs-driver, walkthrough, no-run, parsed, text.

    Raises AssertionError naming the block if it fits no class."""
    flags = set(block.flags)
    unknown = flags - KNOWN_FLAGS
    assert not unknown, f"{block.where}: unknown flags {sorted(unknown)}"
    if "no-run" in flags:
        assert block.reason, f"{block.where}: `no-run:` needs a reason after the colon"
        return "no-run"
    if block.language in PYTHON_LANGUAGES:
        if "walkthrough" in flags:
            return "walkthrough"
        return "needs-driver" if "needs-driver" in flags else "run"
    if block.language in SHELL_LANGUAGES:
        if "walkthrough" in flags:
            return "walkthrough"
        assert "run" in flags, (
            f"{block.where}: a {block.language} block must say `run`, `walkthrough` "
            "or `no-run: REASON`"
        )
        return "run"
    if block.language in PARSED_LANGUAGES:
        return "parsed"
    assert block.language in TEXT_LANGUAGES, (
        f"{block.where}: fence language {block.language!r} is not one of "
        f"{sorted(PYTHON_LANGUAGES | SHELL_LANGUAGES | PARSED_LANGUAGES | TEXT_LANGUAGES)}"
    )
    return "text"


def blocks_of(kind: str, languages: set[str]) -> list[Block]:
    found = []
    for block in BLOCKS:
        with contextlib.suppress(AssertionError):
            if classify(block) == kind and block.language in languages:
                found.append(block)
    return found


def ids(blocks: list[Block]) -> list[str]:
    return [block.where for block in blocks]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PAXDB_SEED", None)
    return env


def has_driver() -> bool:
    return hasattr(paxdb, "connect")


# The classification itself.


def test_every_block_is_classified() -> None:
    problems = []
    for block in BLOCKS:
        try:
            classify(block)
        except AssertionError as error:
            problems.append(str(error))
    assert not problems, "\n".join(problems)
    assert len(BLOCKS) > 20, "the docs lost their code blocks?"


def test_the_docs_exist_and_link_to_each_other() -> None:
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.rglob("*.md")):
        if page != DOCS / "README.md":
            assert str(page.relative_to(DOCS)) in index, f"docs/README.md misses {page.name}"
    for page in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page}: broken link {target}"


# Python blocks.


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


@pytest.mark.timeout(BLOCK_TIMEOUT_S + 10)
@pytest.mark.parametrize(
    "block", blocks_of("run", PYTHON_LANGUAGES), ids=ids(blocks_of("run", PYTHON_LANGUAGES))
)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    result = run_python(block.text, tmp_path)
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"


NEEDS_DRIVER = blocks_of("needs-driver", PYTHON_LANGUAGES)


@pytest.mark.timeout(BLOCK_TIMEOUT_S + 10)
@pytest.mark.parametrize("block", NEEDS_DRIVER, ids=ids(NEEDS_DRIVER))
def test_python_block_that_needs_the_driver_runs(block: Block, tmp_path: Path) -> None:
    if not has_driver():
        pytest.skip("needs the DB-API driver (paxdb.connect), which is not built yet")
    result = run_python(block.text, tmp_path)
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"


# Shell blocks.


@dataclass(frozen=True)
class Command:
    line: str
    exit_status: int
    expected: tuple[str, ...]


def commands_of(block: Block) -> list[Command]:
    commands: list[Command] = []
    current: str | None = None
    expected: list[str] = []
    status = 0
    for line in block.text.splitlines() + ["$ "]:
        if line.startswith("$ ") or line == "$":
            if current:
                commands.append(Command(current, status, tuple(expected)))
            text = line[2:]
            match = _EXIT.search(text)
            status = int(match.group(1)) if match else 0
            current = text[: match.start()] if match else text
            current = current.strip()
            expected = []
        elif current is not None and line.strip():
            expected.append(line.rstrip())
    return commands


def output_matches(expected: tuple[str, ...], actual: str) -> str:
    """ "" if every expected line occurs in order in `actual` (`...` is a wildcard)."""
    lines = [line.rstrip() for line in actual.splitlines()]
    position = 0
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part) for part in want.strip().split("...")))
        while position < len(lines) and not pattern.fullmatch(lines[position].strip()):
            position += 1
        if position == len(lines):
            return f"expected line not found (in order): {want!r}"
        position += 1
    return ""


SHELL_RUN = blocks_of("run", SHELL_LANGUAGES)


@pytest.mark.timeout(BLOCK_TIMEOUT_S + 10)
@pytest.mark.parametrize("block", SHELL_RUN, ids=ids(SHELL_RUN))
def test_shell_block_runs(block: Block, tmp_path: Path) -> None:
    commands = commands_of(block)
    assert commands, f"{block.where}: a `run` block needs `$ ` command lines"
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command.line],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == command.exit_status, (
            f"{block.where}: `{command.line}` exited {result.returncode}, "
            f"expected {command.exit_status}\n{output}"
        )
        problem = output_matches(command.expected, output)
        assert not problem, f"{block.where}: `{command.line}`: {problem}\n--- got:\n{output}"


# Data blocks.

PARSED = blocks_of("parsed", PARSED_LANGUAGES)


@pytest.mark.parametrize("block", PARSED, ids=ids(PARSED))
def test_data_block_parses(block: Block) -> None:
    if block.language == "toml":
        tomllib.loads(block.text)
    else:
        json.loads(block.text)


def test_toml_config_examples_use_only_known_keys() -> None:
    from paxdb.node.config import CONFIG_KEYS

    for block in PARSED:
        if block.language == "toml" and "id" in tomllib.loads(block.text):
            unknown = set(tomllib.loads(block.text)) - CONFIG_KEYS
            assert not unknown, f"{block.where}: keys paxdb does not know: {sorted(unknown)}"


# The tutorial, for real: three `paxdb serve` processes on free loopback ports.

TUTORIAL_PEER_PORTS = (7101, 7102, 7103)
CLIENT_PORT_OFFSET = 1000


def free_base_port() -> int:
    """A base B with B+1..B+3 and B+1001..B+1003 free on loopback."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    while True:
        # Below the ephemeral range (32768 up), client ports included (demo.pick_ports).
        base = rng.randrange(20_000, EPHEMERAL_PORT_MIN - CLIENT_PORT_OFFSET - 10, 10)
        ports = [base + i for i in (1, 2, 3)]
        if all(port_is_free(p) and port_is_free(p + CLIENT_PORT_OFFSET) for p in ports):
            return base


def substitute_ports(text: str, base: int) -> str:
    for index, port in enumerate(TUTORIAL_PEER_PORTS, start=1):
        text = text.replace(f":{port}", f":{base + index}")
        client = port + CLIENT_PORT_OFFSET
        text = text.replace(f":{client}", f":{base + CLIENT_PORT_OFFSET + index}")
    return text


def tutorial_commands(prefix: str) -> list[str]:
    found = []
    for block in collect(TUTORIAL):
        if "walkthrough" in block.flags and block.language in SHELL_LANGUAGES:
            found += [c.line for c in commands_of(block) if c.line.startswith(prefix)]
    return found


def run_command(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shlex.split(command),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def wait_for(condition: Callable[[], int | None], timeout_s: float, what: str) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def master_of(status_json: str) -> int | None:
    with contextlib.suppress(ValueError, KeyError):
        group = json.loads(status_json)["groups"]["main"]
        if group["role"] == "master":
            return int(json.loads(status_json)["node"])
    return None


@pytest.mark.timeout(90)
def test_tutorial_walkthrough(tmp_path: Path) -> None:
    serve = tutorial_commands("paxdb serve")
    status = tutorial_commands("paxdb status")
    assert len(serve) == 3, f"the tutorial should start three nodes: {serve}"
    assert status, "the tutorial should show `paxdb status`"
    base = free_base_port()
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for node_id, line in enumerate(serve, start=1):
            line = substitute_ports(line, base)
            match = re.fullmatch(r"(paxdb serve .*?)\s+2>\s*(\S+)\s*&", line)
            assert match, f"tutorial serve line has an unexpected shape: {line}"
            log = open(tmp_path / match.group(2), "ab")  # noqa: SIM115 - closed with the process.
            processes[node_id] = subprocess.Popen(
                shlex.split(match.group(1)), cwd=tmp_path, env=child_env(), stderr=log
            )
            log.close()
        urls = [substitute_ports(line, base) for line in status]

        def find_master() -> int | None:
            for node_id in list(processes):
                url = f"paxdb://127.0.0.1:{base + CLIENT_PORT_OFFSET + node_id}/main"
                result = run_command(f"paxdb status --json {url}", tmp_path)
                master = master_of(result.stdout) if result.returncode == 0 else None
                if master is not None:
                    return master
            return None

        first = wait_for(find_master, 30, "a master")
        for url in urls:  # The tutorial's status commands, as written (ports aside).
            result = run_command(url, tmp_path)
            assert result.returncode == 0, result.stderr
            assert re.search(r"database\s+role\s+master\s+chosen\s+applied", result.stdout)
            assert re.search(r"^main\s+(master|follower)\s+\d", result.stdout, re.M)
        shell = tutorial_commands("paxdb shell")
        assert shell, "the tutorial should write and read with `paxdb shell`"
        for line in shell:
            result = run_command(substitute_ports(line, base), tmp_path)
            assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        assert "first note" in result.stdout, result.stdout  # The last one reads it back.
        for block in collect(TUTORIAL):
            if block.language in PYTHON_LANGUAGES and "walkthrough" in block.flags:
                if not has_driver():
                    continue  # Reported by the summary test below.
                result = run_python(substitute_ports(block.text, base), tmp_path)
                assert result.returncode == 0, f"{block.where}\n{result.stderr}"
        processes[first].send_signal(signal.SIGKILL)
        processes.pop(first).wait(10)
        second = wait_for(find_master, 30, "a new master after kill -9")
        assert second != first
        survivor = next(iter(processes))
        url = f"paxdb://127.0.0.1:{base + CLIENT_PORT_OFFSET + survivor}/main"
        result = run_command(f"paxdb status {url}", tmp_path)
        assert re.search(rf"^{first}\s+\S+\s+\S+\s+no\s*$", result.stdout, re.M), result.stdout
        for node_id in list(processes):
            processes[node_id].send_signal(signal.SIGTERM)
        for node_id in list(processes):
            assert processes.pop(node_id).wait(15) == 0, "a clean stop exits 0"
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            process.wait(10)


def test_walkthrough_python_blocks_are_reported() -> None:
    """The tutorial's driver blocks run inside the walk-through only when the driver exists."""
    pending = [
        block.where
        for block in collect(TUTORIAL)
        if block.language in PYTHON_LANGUAGES and "walkthrough" in block.flags
    ]
    assert pending, "the tutorial should write and read through the driver"
    if not has_driver():
        pytest.skip(f"not run until paxdb.connect exists: {', '.join(pending)}")
