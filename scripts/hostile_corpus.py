"""Write the corpus of broken and hostile image files to a folder.

    python scripts/hostile_corpus.py /tmp/hostile [--face PHOTO]

The files are built from one real face photo (by default the first LFW photo under
../shared/data, or FACESEARCH_DATA); they are test material, never to be committed.
The cases themselves live in tests/badfiles.py, which the tests and the fuzzer share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from badfiles import hostile_corpus, write_corpus  # noqa: E402

DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_FACE = DATA / "lfw" / "images_deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the files (created)")
    parser.add_argument("--face", type=Path, default=DEFAULT_FACE, help="a photo with one face")
    args = parser.parse_args()
    if not args.face.exists():
        parser.error(f"{args.face} does not exist; pass --face or set FACESEARCH_DATA")
    cases = hostile_corpus(args.face.read_bytes())
    write_corpus(args.folder, cases)
    expected = {c.name: {"expect": c.expect, "phrase": c.phrase} for c in cases}
    (args.folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    counts = Counter(c.expect for c in cases)
    size = sum(len(c.data) for c in cases)
    print(f"{len(cases)} files ({size / 1e6:.1f} MB) in {args.folder}: {dict(counts)}")


if __name__ == "__main__":
    main()
