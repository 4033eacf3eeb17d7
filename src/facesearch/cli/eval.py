"""`facesearch eval …`: accuracy on labelled photos, written as JSON reports and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import Settings
from ..errors import FacesearchError
from ..evaluation import measure
from ..evaluation.embeddings import Embeddings, embed_files
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


def _embedder(settings: Settings, mirrored: bool, use_cache: bool = True) -> measure.Embed:
    """Embeddings with a progress bar and a warning for images without a face."""
    return lambda files, models, what: _embed(files, settings, models, mirrored, what, use_cache)


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
    models = measure.recognisers(settings, model)
    embed = _embedder(settings, flip, not no_cache)
    found = measure.verification(
        settings, embed, pairs_file, images, models, flip, per_fold, output
    )
    results, path, png = found.rows, found.report, found.plots[0]
    if as_json:
        out.print_json(path.read_text())
        return
    table = Table(title=f"verification on {found.size} pairs of {pairs_file.name}")
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
    models = measure.recognisers(settings, model)
    if protocol == "wild":
        from ..evaluation.wild_report import identify_wild

        embed = _embedder(settings, flip, not no_cache)
        rows = identify_wild(
            settings, models, flip, gallery, distractors or [], exclude, enrol, max_probes,
            min_quality, output, not no_cache, lambda files, what: embed(files, models, what),
        )  # fmt: skip
        _print_wild(rows, output)
        return
    if protocol != "lfw":
        raise FacesearchError(f"unknown protocol {protocol!r}: 'lfw' or 'wild'")
    found = measure.identification(
        settings, _embedder(settings, flip, not no_cache), gallery, distractors or [], counts,
        models, flip, min_quality, exclude, output,
    )  # fmt: skip
    report_rows, path, pngs = found.rows, found.report, found.plots
    table = Table(title=f"identification, {found.size:,} people enrolled")
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
    name = measure.recognisers(settings, [model] if model else None)[0]
    rates = measure.demographics(
        settings, _embedder(settings, flip, not no_cache), images, name, flip, min_quality,
        ages, output,
    )  # fmt: skip
    thresholds, path = rates.thresholds, rates.report
    for title, result in rates.by.items():
        table = Table(title=f"false match rate by {title}")
        table.add_column("group")
        table.add_column("images")
        for band in thresholds:
            table.add_column(f"{band} (score {thresholds[band]:.3f})")
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
    name = measure.recognisers(settings, [model] if model else None)[0]
    fitted, path = measure.calibrate(
        _embedder(settings, flip), pairs_file, images, name, flip, output
    )
    out.print_json(json.dumps({k: v for k, v in fitted.to_json().items() if k != "curve"}))
    out.print(f"calibration: {path}")
