"""Raw similarity → estimated false match rate and a plain band, per model.

A calibration is fitted on impostor pairs (two different people) of a
development set that the reported figures never use: LFW's pairsDevTrain.txt.
The 1,100 impostor pairs listed there cannot resolve a false match rate of 1e-4,
so every pair of images of two different DevTrain people is used (millions of
pairs). The result is a small JSON file shipped with the package, one per model
and flip setting, read by the engine to label each search result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import FacesearchError
from . import metrics, precision

# Band name and the false match rate its lowest score is tuned to. "strong lead" is
# also held to a top-1 precision of 99% in a gallery of STRONG_LEAD_GALLERY faces:
# the higher of the two scores is its threshold.
BANDS = (("strong lead", 1e-4), ("possible lead", 1e-3), ("weak", 1e-2))
STRONG_LEAD_PRECISION = 0.99
STRONG_LEAD_GALLERY = 10_000
BELOW = "unlikely"
CURVE_FMRS = tuple(10.0 ** -(k / 4) for k in range(0, 25))  # 1 … 1e-6, 4 points a decade


@dataclass(frozen=True)
class Calibration:
    model: str
    version: str
    flip: bool
    thresholds: dict[str, float]  # band → lowest score in it
    scores: np.ndarray  # rising
    fmrs: np.ndarray  # falling: the false match rate at each score
    floor: float  # the smallest false match rate the data can resolve
    meta: dict

    def estimated_fmr(self, score: float) -> float:
        """The share of impostor pairs scoring at least `score` (interpolated in log
        space; never below what the calibration data can resolve)."""
        if score <= self.scores[0]:
            return float(self.fmrs[0])
        log_fmr = np.interp(score, self.scores, np.log10(self.fmrs))
        return float(max(10.0**log_fmr, self.floor))

    @property
    def gallery_size(self) -> int | None:
        """The gallery size at which "strong lead" holds its precision (None: FMR only)."""
        rule = self.meta.get("strong_lead")
        return int(rule["gallery_size"]) if rule else None

    def band(self, score: float) -> str:
        for name, _ in BANDS:
            if score >= self.thresholds[name]:
                return name
        return BELOW

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "version": self.version,
            "flip": self.flip,
            "bands": [
                {"band": name, "fmr": fmr, "threshold": round(self.thresholds[name], 6)}
                for name, fmr in BANDS
            ],
            "floor_fmr": self.floor,
            "curve": [
                [round(float(s), 6), float(f)] for s, f in zip(self.scores, self.fmrs, strict=True)
            ],
            **self.meta,
        }

    @classmethod
    def from_json(cls, data: dict) -> Calibration:
        curve = np.array(data["curve"], dtype=np.float64)
        meta = {
            k: v
            for k, v in data.items()
            if k not in ("model", "version", "flip", "bands", "floor_fmr", "curve")
        }
        return cls(
            model=data["model"],
            version=data["version"],
            flip=bool(data["flip"]),
            thresholds={b["band"]: float(b["threshold"]) for b in data["bands"]},
            scores=curve[:, 0],
            fmrs=curve[:, 1],
            floor=float(data["floor_fmr"]),
            meta=meta,
        )


def fit(
    model: str,
    version: str,
    flip: bool,
    impostor_scores: np.ndarray,
    genuine_scores: np.ndarray,
    data: str,
) -> Calibration:
    """A calibration from impostor scores (and genuine scores, for the record only)."""
    impostors = np.asarray(impostor_scores, np.float64)
    floor = 1.0 / len(impostors)
    points = sorted({(metrics.threshold_at_fmr(impostors, f), f) for f in CURVE_FMRS if f >= floor})
    # Every impostor scores at least the lowest impostor score: the curve starts at 1.
    scores = np.array([impostors.min(), *(p[0] for p in points if np.isfinite(p[0]))])
    fmrs = np.array([metrics.false_match_rate(impostors, s) for s in scores])
    fmrs = np.maximum(fmrs, floor)
    thresholds = {name: metrics.threshold_at_fmr(impostors, fmr) for name, fmr in BANDS}
    genuine = np.asarray(genuine_scores, np.float64)
    by_gallery = {}
    if len(genuine):
        by_gallery = {
            g: precision.precision_threshold(impostors, genuine, g, STRONG_LEAD_PRECISION)
            for g in precision.GALLERY_SIZES
        }
        thresholds["strong lead"] = max(thresholds["strong lead"], by_gallery[STRONG_LEAD_GALLERY])
    meta = {
        "data": data,
        "impostor_pairs": len(impostors),
        # The scale of this model's scores between strangers: a score fusion of several
        # models puts each on this scale (z-score) with figures from development data.
        "impostor_mean": round(float(impostors.mean()), 6),
        "impostor_std": round(float(impostors.std()), 6),
        "genuine_pairs": len(genuine),
        "strong_lead": {
            "rule": f"top-1 precision >= {STRONG_LEAD_PRECISION:.0%} in a gallery of "
            f"{STRONG_LEAD_GALLERY:,} faces, and an FMR of at most 1e-4",
            "gallery_size": STRONG_LEAD_GALLERY,
            "threshold_by_gallery_size": {str(g): round(t, 6) for g, t in by_gallery.items()},
        },
        "true_match_rate_per_band": {
            name: round(float((genuine >= t).mean()), 4) for name, t in thresholds.items()
        },
        "fitted": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    return Calibration(model, version, flip, thresholds, scores, fmrs, floor, meta)


def file_name(model: str, flip: bool) -> str:
    return f"{model}{'+flip' if flip else ''}.json"


def load(model: str, flip: bool, folder: Path | None = None) -> Calibration | None:
    """The shipped calibration of `model` (or one in `folder`), None when there is none."""
    name = file_name(model, flip)
    if folder is not None:
        path = folder / name
        text = path.read_text() if path.is_file() else None
    else:
        ref = resources.files("facesearch.models").joinpath("calibration", name)
        text = ref.read_text() if ref.is_file() else None
    if text is None:
        return None
    try:
        return Calibration.from_json(json.loads(text))
    except (KeyError, ValueError, TypeError) as exc:
        raise FacesearchError(f"calibration {name} is malformed: {exc}") from None


def for_model(spec, flip: bool) -> Calibration | None:
    """The calibration of a registry entry: its declared file, else the shipped one."""
    if spec.calibration_file is None:
        return load(spec.name, flip)
    path = Path(spec.calibration_file)
    try:
        return Calibration.from_json(json.loads(path.read_text()))
    except OSError as exc:
        raise FacesearchError(f"cannot read the calibration of {spec.name}: {exc}") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise FacesearchError(f"calibration {path} is malformed: {exc}") from None


def save(calibration: Calibration, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(calibration.model, calibration.flip)
    path.write_text(json.dumps(calibration.to_json(), indent=1) + "\n")
    return path
