"""Search and verification quality on real labelled photos, with the real models."""

import csv

import numpy as np
from conftest import lfw_gallery

from facesearch.models.registry import SFACE
from facesearch.pipeline.decode import decode

PEOPLE = 20
MAX_GALLERY = 9  # per person, to keep the run short


def test_held_out_lfw_photos_find_their_person_at_rank_one(catalog_engine, lfw, tmp_path):
    engine = catalog_engine  # the catalog on SQLite, then on PostgreSQL: the same rank-1
    manifest, probes = lfw_gallery(lfw, tmp_path, PEOPLE, MAX_GALLERY)
    assert len(probes) == PEOPLE
    engine.create_collection("lfw", "LFW deep-funneled", "research benchmark")
    report = engine.ingest([manifest], "lfw")
    assert report.errors == 0 and report.images >= PEOPLE * 4

    correct = 0
    for name, probe in probes.items():
        result = engine.search(probe.read_bytes(), top_k=5)
        best = result.hits[0]
        correct += best.path.split("/")[-2] == name
    # Measured: 20 of 20 (100%) with SFace; the issue asks for at least 95%.
    assert correct / len(probes) >= 0.95, f"rank-1 {correct}/{len(probes)}"
    assert correct == len(probes)


def test_verification_on_the_wild_pairs(analyzer, wild):
    threshold = SFACE.match_threshold
    embeddings = {}

    def embedding(name):
        if name not in embeddings:
            pixels = decode((wild / name).read_bytes(), analyzer.settings.decode).pixels
            faces = sorted(analyzer.faces(pixels), key=lambda f: f.detection.area)
            embeddings[name] = faces[-1].embedding
        return embeddings[name]

    rows = list(csv.DictReader((wild / "master.csv").open()))
    same = np.array([r["Decision"] == "Yes" for r in rows])
    scores = np.array([float(embedding(r["file_x"]) @ embedding(r["file_y"])) for r in rows])
    accuracy = float(((scores >= threshold) == same).mean())
    # Measured: 300 of 300 pairs right at SFace's published threshold 0.363.
    assert len(rows) == 300 and same.sum() == 38
    assert accuracy >= 0.995, f"accuracy {accuracy:.3f}"
    # Genuine pairs score clearly higher than impostors overall.
    assert scores[same].mean() - scores[~same].mean() > 0.4
