"""How long the console (/ui/) takes to render a big saga's timeline in Debian's headless chromium.

    .venv/bin/python bench/bench_console.py [--milestones 200] [--runs 7]

Starts ``saga-journey serve --insecure-dev`` on a free port (the built-in handler names are
no-op compensation handlers there), designs a journey of ``--milestones`` + 1 milestones, each
with a compensation handler, completes ``--milestones`` of them and fails the last: the rollback
makes one compensation attempt per completed milestone (200 by default; the history then holds
2 x 200 + 2 entries). Then, in the browser:

- page: from opening the saga's page to its timeline drawn with every entry (the page reads
  the status, replays the history over the saga's event stream, and draws the entries as they
  arrive), timed in the page;
- timeline: ``renderTimeline`` of the whole history alone, ``--runs`` times (build the SVG,
  insert it, force layout; then the next animation frame, i.e. painted), median and worst.

Prints the figures and the machine. A benchmark, not a test: no threshold is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ops.browser import CHROMIUM, chromium, missing  # noqa: E402
from tests.ops.conftest import free_port  # noqa: E402

MEASURE = """
const [sagaId, runs, done] = arguments;
(async () => {
  const { renderTimeline } = await import("/ui/timeline.js");
  const resp = await fetch(`/v1/sagas/${sagaId}/history?limit=10000`);
  const { events } = await resp.json();
  const box = document.createElement("div");
  box.className = "timeline-scroll";
  document.body.append(box);
  const out = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const svg = renderTimeline(events);
    box.replaceChildren(svg);
    svg.getBoundingClientRect();
    const laid = performance.now() - t0;
    await new Promise((r) => requestAnimationFrame(() => r()));
    out.push({ laid_out_ms: laid, painted_ms: performance.now() - t0, marks: svg.querySelectorAll("g.mark").length });
  }
  box.remove();
  done({ entries: events.length, runs: out });
})().catch((e) => done({ error: String(e) }));
"""


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=90) as resp:
        return json.load(resp)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    return (f"{platform.platform()} | {cpu} | {os.cpu_count()} cpus | load average {os.getloadavg()[0]:.1f} | "
            f"{version} (headless)")


def make_saga(base: str, milestones: int) -> tuple[str, int]:
    steps = [{"id": f"m{i:03d}", "compensation_handler": "cancel_order"} for i in range(milestones)]
    steps.append({"id": "last", "compensation_handler": "cancel_order"})
    jid = post(base, "/v1/journeys", {"journey_type": "bench_console", "journey_id": "big",
                                      "requirements": {"milestones": steps}})["journey_id"]
    sid = post(base, "/v1/sagas", {"journey_id": jid, "saga_id": "big-saga"})["saga_id"]
    for step in steps[:-1]:
        post(base, f"/v1/sagas/{sid}/advance", {"step_result": {"status": "complete", "milestone_id": step["id"]}})
    post(base, f"/v1/sagas/{sid}/fail", {"milestone_id": "last", "error": "the last step failed"})
    final = get(base, f"/v1/sagas/{sid}?wait=60")
    assert final["status"] == "FAILED" and len(final["compensated_milestones"]) == milestones, final
    history = get(base, f"/v1/sagas/{sid}/history?limit=10000")["events"]
    attempts = sum(1 for e in history if e["type"].startswith("compensation_"))
    assert attempts == milestones, attempts
    return sid, len(history)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--milestones", type=int, default=200, help="completed milestones, each compensated once")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    why = missing()
    if why:
        raise SystemExit(why)
    from selenium.webdriver.support.ui import WebDriverWait

    data = tempfile.mkdtemp(prefix="bench-console-")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--create", "--insecure-dev",
                             "--data-dir", data, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "listening on" in (proc.stdout.readline() if proc.stdout else "")
        base = f"http://127.0.0.1:{port}"
        sid, entries = make_saga(base, args.milestones)
        with chromium() as driver:
            driver.get(base + "/ui/#/overview")  # warm: the modules are loaded and cached
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return !!document.getElementById('whoami')"))
            started = time.perf_counter()
            driver.execute_script("location.hash = arguments[0]", f"#/saga/{sid}")
            WebDriverWait(driver, 120, poll_frequency=0.01).until(
                lambda d: d.execute_script("return document.getElementById('timeline')?.dataset.entries") == str(entries))
            page_s = time.perf_counter() - started
            last = driver.execute_script("return {...document.getElementById('timeline').dataset}")
            driver.set_script_timeout(300)
            result = driver.execute_async_script(MEASURE, sid, args.runs)
        if "error" in result:
            raise SystemExit(result["error"])
        laid = [r["laid_out_ms"] for r in result["runs"]]
        painted = [r["painted_ms"] for r in result["runs"]]
        print(f"machine: {machine()}")
        print(f"saga: {args.milestones + 1} milestones ({args.milestones} completed, the last failed), "
              f"{args.milestones} compensation attempts, {entries} history entries, "
              f"{result['runs'][0]['marks']} timeline marks")
        print(f"page: opened to timeline complete in {float(last['completeMs']):.0f} ms in the page "
              f"({page_s * 1000:.0f} ms seen by the driver; status, event-stream replay, drawing as entries arrive), "
              f"its last draw {float(last['renderMs']):.1f} ms")
        print(f"timeline alone, {args.runs} runs: laid out median {statistics.median(laid):.1f} ms (worst {max(laid):.1f}), "
              f"painted median {statistics.median(painted):.1f} ms (worst {max(painted):.1f})")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
