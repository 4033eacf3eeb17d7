"""Peak memory and time of decode() against image size, this decoder against an earlier one.

Each decode runs in a fresh process; the figure is the growth of its resident high-water
mark over what it held before decoding, per decoded pixel. Images: a real LFW face scaled
up and saved as a JPEG (a photo), and an all-black bilevel PNG (a content bomb: 100
megapixels in 13 kB).
The earlier decoder is taken from git (default: the commit before the hardening).

    python bench/decode_memory.py [--baseline 60a56c8]

Results go to bench/results/decode_memory.json, .md and .png.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
FACE = DATA / "lfw" / "images_deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
MEGAPIXELS = (4, 16, 36, 64, 100)

MEASURE = """
import sys, time
from pathlib import Path
from facesearch.config import DecodeSettings
from facesearch.pipeline.decode import decode

def high_water():  # per address space, unlike ru_maxrss, which a child inherits
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

data = Path(sys.argv[1]).read_bytes()
decode(Path(sys.argv[2]).read_bytes(), DecodeSettings())  # imports and warms every plugin
before = high_water()
start = time.perf_counter()
image = decode(data, DecodeSettings())
seconds = time.perf_counter() - start
print(high_water() - before, seconds, image.width * image.height)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="60a56c8", help="git commit of the earlier decoder")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--megapixels", type=int, nargs="+", default=list(MEGAPIXELS))
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per figure")
    args = parser.parse_args()
    from badfiles import png_bilevel_zeros
    from PIL import Image

    face = Image.open(FACE).convert("RGB")
    results = []
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as tmp:
        old_src = Path(tmp, "old")
        shutil.copytree(ROOT / "src", old_src)
        old_decode = subprocess.run(
            ["git", "show", f"{args.baseline}:src/facesearch/pipeline/decode.py"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout  # fmt: skip
        (old_src / "facesearch/pipeline/decode.py").write_bytes(old_decode)
        warm = Path(tmp, "warm.jpg")
        warm.write_bytes(FACE.read_bytes())
        for megapixels in args.megapixels:
            side = int((megapixels * 1e6) ** 0.5)
            files = {"photo (JPEG)": Path(tmp, f"{megapixels}.jpg"),
                     "content bomb (1-bit PNG)": Path(tmp, f"{megapixels}.png")}  # fmt: skip
            buffer = io.BytesIO()
            face.resize((side, side), Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=90)
            files["photo (JPEG)"].write_bytes(buffer.getvalue())
            files["content bomb (1-bit PNG)"].write_bytes(png_bilevel_zeros(side, side))
            for kind, path in files.items():
                for version, src in (("before", old_src), ("after", ROOT / "src")):
                    runs = [_measure(src, path, warm) for _ in range(args.repeats)]
                    peak = statistics.median(r[0] for r in runs)
                    pixels = runs[0][2]
                    row = {
                        "image": kind, "version": version, "megapixels": round(pixels / 1e6, 1),
                        "file_bytes": path.stat().st_size, "peak_mb": round(peak / 2**20),
                        "bytes_per_pixel": round(peak / pixels, 2),
                        "seconds_median": round(statistics.median(r[1] for r in runs), 3),
                    }  # fmt: skip
                    results.append(row)
                    print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    (args.out / "decode_memory.json").write_text(
        json.dumps({"baseline": args.baseline, "load_average": load, "rows": results}, indent=1)
        + "\n"
    )
    _write_markdown(results, args, load, args.out / "decode_memory.md")
    _plot(results, args.out / "decode_memory.png")


def _measure(src: Path, path: Path, warm: Path) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(warm)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    peak, seconds, pixels = done.stdout.split()
    return float(peak), float(seconds), int(pixels)


def _write_markdown(rows: list[dict], args, load: float, target: Path) -> None:
    sizes = " ".join(str(m) for m in args.megapixels)
    lines = [
        "# decode(): peak memory and time against image size",
        "",
        f"`python bench/decode_memory.py --baseline {args.baseline} --megapixels {sizes} "
        f"--repeats {args.repeats}`; each figure is the median of {args.repeats} fresh "
        f"processes (load average {load:.1f} at the end: times are noisy, "
        "memory is not). Peak = growth of the process's resident high-water mark (VmHWM) "
        "during decode().",
        "",
        "| image | megapixels | file | before: peak MB (B/px) | after: peak MB (B/px) "
        "| before s | after s |",
        "|---|---|---|---|---|---|---|",
    ]
    pairs: dict[tuple, dict] = {}
    for row in rows:
        pairs.setdefault((row["image"], row["megapixels"]), {})[row["version"]] = row
    for (image, megapixels), pair in pairs.items():
        b, a = pair["before"], pair["after"]
        lines.append(
            f"| {image} | {megapixels} | {a['file_bytes'] / 1e3:,.0f} kB "
            f"| {b['peak_mb']} ({b['bytes_per_pixel']}) | {a['peak_mb']} ({a['bytes_per_pixel']}) "
            f"| {b['seconds_median']} | {a['seconds_median']} |"
        )
    target.write_text("\n".join(lines) + "\n")


def _plot(rows: list[dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for image in sorted({r["image"] for r in rows}):
        for version, style in (("before", "--"), ("after", "-")):
            points = [r for r in rows if r["image"] == image and r["version"] == version]
            ax.plot([p["megapixels"] for p in points], [p["peak_mb"] for p in points], style,
                    marker="o", label=f"{image}, {version}")  # fmt: skip
    ax.set_xlabel("megapixels decoded")
    ax.set_ylabel("peak memory growth (MB)")
    ax.set_title("decode(): memory grows linearly with pixels; the hardening lowers the slope")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
