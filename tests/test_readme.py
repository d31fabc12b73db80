"""The README's examples run as written: the HTTP walkthrough against a real `saga-journey serve`,
and the embedding guide, which is examples/embedded_order.py verbatim."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAIR = re.compile(r'"(\w+)": ("[^"]*"|\[[^\]]*\]|-?\d+|true|false|null)')


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def first_block(text: str, lang: str) -> str:
    match = re.search(rf"```{lang}\n(.*?)```\n", text, re.S)
    assert match, f"no ```{lang} block"
    return match.group(1)


def free_port() -> int:
    """A free port below the ephemeral range (32768+), which every port-0 bind on this machine
    draws from: the walkthrough binds its ports a moment later, so they must not be handed out
    to another process in between."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767")


def commands_and_outputs(console: str) -> list[tuple[str, str]]:
    """``$ `` commands (with continuation lines and heredocs) and the output shown after each."""
    steps: list[tuple[str, str]] = []
    lines = console.splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), lines[i]
        command = [lines[i][2:]]
        heredoc = re.search(r"<<'(\w+)'", lines[i])
        while command[-1].endswith("\\") or heredoc:
            i += 1
            command.append(lines[i])
            if heredoc and lines[i] == heredoc.group(1):
                heredoc = None
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        steps.append(("\n".join(command), "\n".join(shown)))
    return steps


def run_console(console: str, tmp_path: Path) -> str:
    """Run a README console block in a shell in ``tmp_path``; check each shown answer's
    key/value pairs against the real one; return the whole output."""
    steps = commands_and_outputs(console)
    script = ["set -eu", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    for n, (command, _) in enumerate(steps):
        script += [f"echo; echo '@@@ {n}'", command]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = dict(re.findall(r"@@@ (\d+)\n(.*?)(?=\n@@@ |\Z)", proc.stdout, re.S))
    for n, (command, shown) in enumerate(steps):
        if not shown.strip():
            continue
        actual = outputs[str(n)].strip().splitlines()
        # curl prints no newline: the stand-in service's log may follow on the same line
        answer, _ = json.JSONDecoder().raw_decode([line for line in actual if line.startswith("{")][-1])
        for key, value in PAIR.findall(shown):
            if "..." not in value:
                assert answer[key] == json.loads(value), (command, key, answer, proc.stderr)
    assert "urn:saga-journey:problem" not in proc.stdout, proc.stdout
    return proc.stdout


def test_http_walkthrough_runs_against_a_real_server(tmp_path) -> None:
    console = first_block(section("HTTP gateway"), "console")
    serve_port = hook_port = free_port()
    while hook_port == serve_port:
        hook_port = free_port()
    console = console.replace("8080", str(serve_port)).replace("9000", str(hook_port))
    stdout = run_console(console, tmp_path)
    compensated = re.findall(r"compensated (\w+) for", stdout)
    assert compensated == ["release_inventory", "refund_payment", "cancel_order"], stdout


def test_quick_start_shows_the_demo_saga_through_the_gateway(tmp_path) -> None:
    """`make run` then `make serve`: the demo's saga is seen through the gateway (same tenant),
    and a template runs end to end with curl alone (the --insecure-dev no-op handlers)."""
    console = first_block(section("Quick start"), "console").replace("8080", str(free_port()))
    stdout = run_console(console, tmp_path)
    last = len(commands_and_outputs(console)) - 1
    assert re.search(rf"@@@ {last}\n1\n", stdout), stdout  # the grep -c: one no-op compensation logged
    makefile = (ROOT / "Makefile").read_text()
    assert "saga-journey demo --data-dir $(DATA)" in makefile
    assert "serve --create --data-dir $(DATA)" in makefile and "--insecure-dev" in makefile


def test_embedding_guide_is_the_example_file_verbatim() -> None:
    example = (ROOT / "examples" / "embedded_order.py").read_text()
    assert first_block(section("Embedding guide"), "python") == example


def test_embedding_example_runs(tmp_path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "embedded_order.py"),
                           "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FAILED, compensated newest first: ['reserve_inventory', 'process_payment', 'create_order']" in proc.stdout
    assert proc.stdout.index("released the stock") < proc.stdout.index("refunded ch_1") < proc.stdout.index("cancelled o-7")


def test_metrics_snippet_runs(tmp_path) -> None:
    snippet = first_block(section("Metrics and dashboards"), "python").replace("port=9464", "port=0")
    check = (
        "\nimport urllib.request\n"
        "body = urllib.request.urlopen(server.url).read().decode()\n"
        "assert 'saga_compensation_failed_sagas' in body, body\n"
        "server.close()\norch.close()\nprint('scraped')\n"
    )
    proc = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "scraped" in proc.stdout, proc.stderr
