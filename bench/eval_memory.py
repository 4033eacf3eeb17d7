"""Resident memory of an evaluation run over time: the parent and every worker process.

Runs a `facesearch` command line as a child process, samples the resident set size
(VmRSS) of it and of all its descendant processes every `--every` seconds (threads
are not counted twice), and stops it if the total passes `--limit-mb`, so a leak
cannot take a shared machine down. Writes a JSON report and a PNG plot.

    PYTHONPATH=src python bench/eval_memory.py --name verify-flip-full -- \\
        --workers 2 eval verify --pairs ../shared/data/lfw/pairs.txt --flip --no-cache \\
        --out /tmp/eval-memory
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "eval-memory"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="Report name (file stem).")
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--limit-mb", type=float, default=6000.0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="facesearch arguments")
    args = parser.parse_args()
    command = [a for a in args.command if a != "--"]
    child = subprocess.Popen(
        [sys.executable, "-m", "facesearch", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    start = time.monotonic()
    samples, stopped = [], False
    while child.poll() is None:
        per = {p: rss_mb(p) for p in tree(child.pid)}
        parent = per.pop(child.pid, 0.0)
        total = parent + sum(per.values())
        samples.append({
            "s": round(time.monotonic() - start, 1),
            "parent_mb": round(parent, 1),
            "workers_mb": [round(v, 1) for v in per.values()],
            "total_mb": round(total, 1),
        })  # fmt: skip
        if total > args.limit_mb:
            os.killpg(child.pid, signal.SIGTERM)
            stopped = True
            break
        time.sleep(args.every)
    child.wait()
    report = {
        "command": ["facesearch", *command],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "exit_code": child.returncode,
        "stopped_above_limit_mb": args.limit_mb if stopped else None,
        "seconds": round(time.monotonic() - start, 1),
        "peak_total_mb": max((s["total_mb"] for s in samples), default=0.0),
        "peak_parent_mb": max((s["parent_mb"] for s in samples), default=0.0),
        "peak_worker_mb": max((max(s["workers_mb"], default=0.0) for s in samples), default=0.0),
        "load_average": os.getloadavg(),
        "samples": samples,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(report, OUT / f"{args.name}.png")
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["s"] / 60 for s in report["samples"]]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(t, [s["total_mb"] for s in report["samples"]], label="total")
    ax.plot(t, [s["parent_mb"] for s in report["samples"]], label="parent")
    ax.plot(t, [max(s["workers_mb"], default=0) for s in report["samples"]], label="largest worker")
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title(path.stem, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
