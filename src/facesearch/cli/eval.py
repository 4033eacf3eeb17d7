"""`facesearch eval …`: accuracy on labelled photos, written as JSON reports and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import Settings
from ..errors import FacesearchError
from ..evaluation import calibration as calib
from ..evaluation import demographics as demo
from ..evaluation import identify as ident
from ..evaluation import plots
from ..evaluation.embeddings import Embeddings, embed_files
from ..evaluation.protocols import Pairs, excluded_files, identities, image_files, read_pairs
from ..evaluation.report import file_digest, write_report
from ..evaluation.verify import Variant, quality_effect, quality_effect_all_pairs, verify
from ..models.registry import get as get_model
from .output import err, out

eval_app = typer.Typer(
    help="Measure accuracy on labelled photos: JSON reports and PNG plots.", no_args_is_help=True
)

ModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Recogniser to measure; repeat for several [default: the configured one].",
    ),
]
FlipOpt = Annotated[
    bool, typer.Option("--flip", help="Also measure test-time flip (embeds every mirror image).")
]
NoCacheOpt = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Embed every image afresh; the embedding cache is neither read nor written.",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the JSON report and plots.")]
DEFAULT_OUT = Path("eval-results")


def _models(settings: Settings, models: list[str] | None) -> list[str]:
    names = models or [settings.embedder]
    for name in names:
        if get_model(name).task != "embed":
            raise FacesearchError(f"{name} is not a recogniser")
    return names


def _embed(
    paths: list[Path],
    settings: Settings,
    models: list[str],
    mirrored: bool,
    what: str,
    use_cache: bool = True,
) -> dict[str, Embeddings]:
    columns = (
        TextColumn(f"[bold]embedding {what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("embed", total=len(paths))
        result = embed_files(
            paths,
            settings,
            models,
            lambda d, n: bar.update(task, completed=d, total=n),
            mirrored,
            use_cache,
        )
    for name, e in result.items():
        missing = int((~e.found).sum())
        if missing:
            err.print(f"[yellow]{name}: no face found in {missing} of {len(e.found)} images[/]")
    return result


def _variants(models: list[str], flip: bool) -> list[Variant]:
    variants = [Variant((m,)) for m in models]
    if flip:
        variants += [Variant((m,), True) for m in models]
    if len(models) > 1:
        variants.append(Variant(tuple(models)))
        if flip:
            variants.append(Variant(tuple(models), True))
    return variants


def _slice(pairs: Pairs, per_fold: int | None) -> Pairs:
    """The first `per_fold` matched and mismatched pairs of every fold."""
    if not per_fold:
        return pairs
    keep: list[int] = []
    seen: dict[tuple[int, bool], int] = {}
    for i, (fold, same) in enumerate(zip(pairs.folds, pairs.same, strict=True)):
        if seen.get((fold, same), 0) < per_fold:
            seen[(fold, same)] = seen.get((fold, same), 0) + 1
            keep.append(i)
    return Pairs(
        [pairs.first[i] for i in keep],
        [pairs.second[i] for i in keep],
        [pairs.same[i] for i in keep],
        [pairs.folds[i] for i in keep],
    )


@eval_app.command("verify")
def eval_verify(
    ctx: typer.Context,
    pairs_file: Annotated[
        Path,
        typer.Option(
            "--pairs",
            help="LFW pairs.txt, or a CSV file_x,file_y,decision.",
            exists=True,
            dir_okay=False,
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(
            help="Folder the pair list refers to [LFW: images_deepfunneled beside it; "
            "CSV: its own folder]."
        ),
    ] = None,
    model: ModelOpt = None,
    flip: FlipOpt = False,
    per_fold: Annotated[
        int | None,
        typer.Option(
            help="Use only the first N matched and N mismatched pairs of each fold (a quick slice)."
        ),
    ] = None,
    output: OutOpt = DEFAULT_OUT,
    no_cache: NoCacheOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Pair verification: 10-fold accuracy (threshold from the other nine folds), ROC AUC,
    TAR at FAR 1e-2 and 1e-3, equal error rate, a ROC plot.

    Example: facesearch eval verify --pairs ../shared/data/lfw/pairs.txt --flip
    """
    settings: Settings = ctx.obj
    models = _models(settings, model)
    pairs = _slice(read_pairs(pairs_file, images), per_fold)
    embeddings = _embed(pairs.files, settings, models, flip, "pairs", not no_cache)
    results = [verify(pairs, embeddings, v) for v in _variants(models, flip)]
    png = plots.roc_plot(
        {r["variant"]: r.pop("_curve") for r in results},
        output / "verify-roc.png",
        f"ROC, {pairs_file.name}",
    )
    cal = calib.load(models[0], False)
    if cal is not None:
        # What leaving out low-quality faces does at the "possible lead" threshold.
        quality = quality_effect(
            pairs, embeddings, Variant((models[0],)), cal.thresholds["possible lead"]
        )
        quality_all = quality_effect_all_pairs(embeddings[models[0]], False, cal.thresholds)
    else:
        quality = quality_all = None
    for r in results:
        r.pop("_scores")
    body = {
        "data": {
            "pairs": str(pairs_file),
            "pairs_sha256": file_digest(pairs_file),
            "pairs_used": len(pairs),
            "per_fold": per_fold,
            "images": len(pairs.files),
        },
        "results": results,
        "quality_effect_at_possible_lead": quality,
        "quality_effect_all_impostor_pairs": quality_all,
        "plots": [png.name],
    }
    path = write_report("verify", body, settings, models, output / "verify.json")
    if as_json:
        out.print_json(path.read_text())
        return
    table = Table(title=f"verification on {len(pairs)} pairs of {pairs_file.name}")
    for column in ("variant", "accuracy", "± std", "AUC", "TAR@FAR 1e-2", "TAR@FAR 1e-3", "EER"):
        table.add_column(column)
    for r in results:
        k = r.get("kfold")
        acc = k["accuracy_mean"] if k else r["best_threshold"]["accuracy"]
        table.add_row(
            r["variant"],
            f"{acc:.2%}",
            f"{k['accuracy_std']:.2%}" if k else "",
            f"{r['auc']:.4f}",
            f"{r['tar_at_far']['0.01']['tar']:.2%}",
            f"{r['tar_at_far']['0.001']['tar']:.2%}",
            f"{r['eer']:.2%}",
        )
    out.print(table)
    out.print(f"report: {path}  plot: {png}")


@eval_app.command("identify")
def eval_identify(
    ctx: typer.Context,
    gallery: Annotated[
        Path,
        typer.Option(
            help="Labelled folder, one subfolder per person: "
            "first image enrolled, the rest are probes.",
            exists=True,
            file_okay=False,
        ),
    ],
    distractors: Annotated[
        list[Path] | None,
        typer.Option(help="Folders of people not in the gallery; repeatable."),
    ] = None,
    counts: Annotated[
        str, typer.Option(help="Distractor counts to measure at, comma-separated; 'all'.")
    ] = "0,1000,5000,all",
    model: ModelOpt = None,
    flip: Annotated[bool, typer.Option("--flip", help="Use test-time flip embeddings.")] = False,
    min_quality: Annotated[
        float,
        typer.Option(help="Enrol (gallery and distractors) only faces of at least this quality."),
    ] = 0.0,
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="Files (by name) never to enrol as distractors: a CSV with a file column "
            "(rows with verdict 'same' if it has a verdict column) or one name a line.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    output: OutOpt = DEFAULT_OUT,
    no_cache: NoCacheOpt = False,
    protocol: Annotated[
        str,
        typer.Option(
            help="'lfw': first image enrolled, every other one a probe, distractors "
            "added in steps; 'wild': one enrolled photo, up to --max-probes others, "
            "every distractor (at least 10,000 expected), strong-lead precision."
        ),
    ] = "lfw",
    enrol: Annotated[
        str,
        typer.Option(
            help="wild: 'first' photo, or 'hard' (best quality enrolled, worst searched)."
        ),
    ] = "first",
    max_probes: Annotated[int, typer.Option(help="wild: probes per person (0: all).")] = 3,
) -> None:
    """Closed-set rank-1/rank-10 and open-set FNIR at FPIR 1e-2 and 1e-3, as distractors
    are added to the gallery; CMC and DET plots.

    Example: facesearch eval identify --gallery ../shared/data/lfw/images_deepfunneled
    --distractors ../shared/data/utkface

    In the wild: facesearch eval identify --protocol wild --gallery
    ../shared/data/lfw/images_deepfunneled --distractors ../shared/data/utkface
    --distractors ../shared/data/att_orl --exclude bench/distractors/lfw-duplicates.csv
    """
    settings: Settings = ctx.obj
    models = _models(settings, model)
    if protocol == "wild":
        from ..evaluation.wild_report import identify_wild

        rows = identify_wild(
            settings, models, flip, gallery, distractors or [], exclude, enrol, max_probes,
            min_quality, output, not no_cache, lambda files, what: _embed(
                files, settings, models, flip, what, not no_cache),
        )  # fmt: skip
        _print_wild(rows, output)
        return
    if protocol != "lfw":
        raise FacesearchError(f"unknown protocol {protocol!r}: 'lfw' or 'wild'")
    people = identities(gallery)
    labelled = [(name, p) for name, files in people.items() for p in files]
    extra = [p for folder in distractors or [] for p in image_files(folder)]
    all_paths = [p for _, p in labelled] + extra
    embeddings = _embed(
        all_paths, settings, models, flip, "gallery, probes and distractors", not no_cache
    )
    wanted = [10**9 if c.strip() == "all" else int(c) for c in counts.split(",")]
    # Only distractors are left out: a gallery person's own images stay.
    names = excluded_files(exclude) if exclude else set()
    multi = {name for name, files in people.items() if len(files) > 1}
    left_out = np.array([p.name in names and not (i < len(labelled) and labelled[i][0] in multi)
                         for i, p in enumerate(all_paths)], bool)  # fmt: skip
    report_rows, cmc_curves, det_curves = [], {}, {}
    for variant in [Variant((m,), flip) for m in models]:
        e = embeddings[variant.models[0]]
        vectors = e.vectors(variant.flip)
        n = len(labelled)
        enrollable = e.found & (e.quality >= min_quality) & ~left_out
        extra_rows = np.flatnonzero(enrollable[n:]) + n
        data = ident.split(
            vectors[:n],
            e.found[:n],
            [name for name, _ in labelled],
            vectors[extra_rows],
            enrollable=enrollable[:n],
        )
        rows = ident.identify(data, wanted)
        for row in rows:
            label = f"{variant.label}, {row['distractors']:,} distractors"
            cmc_curves[label] = np.array(row["cmc"])
            det_curves[label] = row.pop("_det")
            report_rows.append({"variant": variant.label, **row})
    pngs = [
        plots.cmc_plot(cmc_curves, output / "identify-cmc.png", "CMC, closed set"),
        plots.det_plot(det_curves, output / "identify-det.png", "DET, open set (rank 1)"),
    ]
    body = {
        "data": {
            "gallery": str(gallery),
            "distractor_folders": [str(d) for d in distractors or []],
            "people": len(people),
            "min_quality": min_quality,
            "images": len(all_paths),
            "excluded": {
                "list": str(exclude),
                "sha256": file_digest(exclude),
                "distractors_left_out": int(left_out.sum()),
            }
            if exclude
            else None,
        },
        "results": report_rows,
        "plots": [p.name for p in pngs],
    }
    path = write_report("identify", body, settings, models, output / "identify.json")
    table = Table(title=f"identification, {data.people:,} people enrolled")
    for column in (
        "variant",
        "distractors",
        "gallery",
        "probes",
        "rank-1",
        "rank-10",
        "FNIR@FPIR 1e-2",
        "FNIR@FPIR 1e-3",
    ):
        table.add_column(column)
    for r in report_rows:
        table.add_row(
            r["variant"],
            f"{r['distractors']:,}",
            f"{r['gallery_size']:,}",
            f"{r['probes']:,}",
            f"{r['rank1']:.2%}",
            f"{r['rank10']:.2%}",
            f"{r['fnir_at_fpir']['0.01']['fnir']:.2%}",
            f"{r['fnir_at_fpir']['0.001']['fnir']:.2%}",
        )
    out.print(table)
    out.print(f"report: {path}  plots: {', '.join(str(p) for p in pngs)}")


def _print_wild(rows: list[dict], output: Path) -> None:
    table = Table(title="identification in the wild: one enrolled photo per person")
    for column in ("variant", "people", "distractors", "probes", "rank-1", "rank-10",
                   "FNIR@FPIR 1e-2", "FNIR@FPIR 1e-3", "strong lead (precision)"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        gallery = r["strong_lead_calibrated_gallery"]
        fitted = f", fitted for {gallery:,} faces" if gallery else ""
        strong = "no calibration"
        if r["strong_lead_threshold"] is not None:
            precision = r["strong_lead_precision"]
            shown = "none" if r["strong_leads"] == 0 else f"{precision:.2%}"
            threshold = r["strong_lead_threshold"]
            strong = f"{shown} of {r['strong_leads']:,} (>= {threshold:.3f}{fitted})"
        table.add_row(
            r["variant"], f"{r['identities']:,}", f"{r['distractors']:,}", f"{r['probes']:,}",
            f"{r['rank1']:.2%}", f"{r['rank10']:.2%}", f"{r['fnir_at_fpir_1e-2']:.2%}",
            f"{r['fnir_at_fpir_1e-3']:.2%}", strong,
        )  # fmt: skip
    out.print(table)
    if rows and rows[0]["distractors"] < 10_000:
        err.print(f"[yellow]only {rows[0]['distractors']:,} distractors: the protocol asks "
                  "for at least 10,000[/]")  # fmt: skip
    out.print(f"report: {output / 'identify-wild.json'}")


@eval_app.command("demographics")
def eval_demographics(
    ctx: typer.Context,
    images: Annotated[
        Path,
        typer.Option(help="UTKFace folder (labels from file names).", exists=True, file_okay=False),
    ],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Recogniser.")] = None,
    flip: Annotated[bool, typer.Option("--flip", help="Use test-time flip embeddings.")] = False,
    min_quality: Annotated[
        float, typer.Option(help="Leave out faces below this quality (0 keeps all).")
    ] = 0.0,
    ages: Annotated[
        str | None, typer.Option(help="Only faces in this age range, e.g. 18-60.")
    ] = None,
    output: OutOpt = DEFAULT_OUT,
    no_cache: NoCacheOpt = False,
) -> None:
    """False match rate per gender and race group on impostor pairs at the calibrated
    band thresholds, and the worst-to-best ratio.

    Example: facesearch eval demographics --images ../shared/data/utkface
    """
    settings: Settings = ctx.obj
    name = _models(settings, [model] if model else None)[0]
    cal = calib.load(name, flip)
    if cal is None:
        raise FacesearchError(
            f"{name}{' with flip' if flip else ''} has no calibration; "
            "run facesearch eval calibrate first"
        )
    files = image_files(images)
    labelled = [(p, demo.utkface_labels(p)) for p in files]
    low, high = _age_range(ages)
    kept = [(p, lab) for p, lab in labelled if lab is not None and low <= lab["age"] <= high]
    if not kept:
        raise FacesearchError(f"no file in {images} is named like UTKFace (age_gender_race_…)")
    e = _embed([p for p, _ in kept], settings, [name], flip, "faces", not no_cache)[name]
    ok = e.found & (e.quality >= min_quality)
    vectors = e.vectors(flip)
    genders = np.array([lab["gender"] for _, lab in kept])
    races = np.array([lab["race"] for _, lab in kept])
    thresholds = {band: cal.thresholds[band] for band, _ in calib.BANDS}
    by_gender = demo.group_rates(
        vectors, {g: ok & (genders == g) for g in demo.GENDERS.values()}, thresholds
    )
    by_race = demo.group_rates(
        vectors, {r: ok & (races == r) for r in demo.RACES.values()}, thresholds
    )
    body = {
        "data": {
            "images": str(images),
            "files": len(files),
            "labelled": len(kept),
            "faces_used": int(ok.sum()),
            "min_quality": min_quality,
            "ages": [low, high],
        },
        "thresholds": thresholds,
        "calibration": {"model": cal.model, "flip": cal.flip, "data": cal.meta.get("data")},
        "gender": by_gender,
        "race": by_race,
    }
    path = write_report("demographics", body, settings, [name], output / "demographics.json")
    for title, result in (("gender", by_gender), ("race", by_race)):
        table = Table(title=f"false match rate by {title}")
        table.add_column("group")
        table.add_column("images")
        for band in thresholds:
            table.add_column(f"{band} (FMR {dict(calib.BANDS)[band]:g})")
        for group, v in result["groups"].items():
            table.add_row(
                group,
                f"{v['images']:,}",
                *(f"{v[b]['fmr']:.2e}" if v[b]["fmr"] is not None else "-" for b in thresholds),
            )
        ratios = result["ratio_worst_to_best"]
        table.add_row(
            "worst/best",
            "",
            *(
                f"{ratios[b]['ratio']:.1f}" if b in ratios and ratios[b]["ratio"] else "-"
                for b in thresholds
            ),
        )
        out.print(table)
    out.print(f"report: {path}")


def _age_range(ages: str | None) -> tuple[int, int]:
    if not ages:
        return 0, 1000
    try:
        low, high = (int(v) for v in ages.split("-"))
    except ValueError:
        raise FacesearchError(f"--ages {ages!r}: expected two ages like 18-60") from None
    return low, high


@eval_app.command("calibrate")
def eval_calibrate(
    ctx: typer.Context,
    pairs_file: Annotated[
        Path,
        typer.Option(
            "--pairs",
            help="A development pair list (LFW pairsDevTrain.txt), never the test list.",
            exists=True,
            dir_okay=False,
        ),
    ],
    images: Annotated[Path | None, typer.Option(help="Folder the pair list refers to.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Recogniser.")] = None,
    flip: Annotated[bool, typer.Option("--flip", help="Calibrate the flip embeddings.")] = False,
    output: Annotated[Path, typer.Option("--out", help="Folder for the calibration JSON.")] = Path(
        "eval-results"
    ),
) -> None:
    """Fit score → estimated false match rate and the band thresholds on every pair of
    images of two different people in a development list.

    Example: facesearch eval calibrate --pairs ../shared/data/lfw/pairsDevTrain.txt
    --out src/facesearch/models/calibration
    """
    settings: Settings = ctx.obj
    name = _models(settings, [model] if model else None)[0]
    pairs = read_pairs(pairs_file, images)
    files = pairs.files
    e = _embed(files, settings, [name], flip, "development images")[name]
    keep = np.flatnonzero(e.found)
    vectors = e.vectors(flip)[keep]
    people = np.array([files[i].parent.name for i in keep])
    impostor, genuine = _all_pair_scores(vectors, people)
    spec = get_model(name)
    data = (
        f"{pairs_file.name}: all {len(impostor):,} pairs of images of two different people "
        f"and {len(genuine):,} of the same person, among {len(keep):,} images of "
        f"{len(set(people)):,} people"
    )
    fitted = calib.fit(name, spec.version, flip, impostor, genuine, data)
    path = calib.save(fitted, output)
    out.print_json(json.dumps({k: v for k, v in fitted.to_json().items() if k != "curve"}))
    out.print(f"calibration: {path}")


def _all_pair_scores(vectors: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every unordered pair of rows, split into different and same person."""
    impostor, genuine = [], []
    for start in range(0, len(vectors), 1024):
        s = vectors[start : start + 1024] @ vectors[start:].T
        rows = np.arange(len(s))[:, None]
        upper = np.arange(s.shape[1])[None, :] > rows
        same = people[start : start + 1024, None] == people[None, start:]
        impostor.append(s[upper & ~same])
        genuine.append(s[upper & same])
    return np.concatenate(impostor), np.concatenate(genuine)
