"""Both recognisers behind the one interface, on real faces."""

import numpy as np
import pytest

from facesearch.config import Settings
from facesearch.models.cache import ModelCache
from facesearch.models.registry import get as get_model
from facesearch.pipeline.analyze import load_embedder
from facesearch.pipeline.decode import decode
from facesearch.pipeline.embed import embed_faces

pytest.importorskip("dlib", reason="the dlib recogniser needs dlib-bin (pip install .[dlib])")


@pytest.fixture(scope="module")
def faces(analyzer, lfw):
    """Central faces of two photos of one person and one of another."""
    out = []
    for name in ("Colin_Powell/Colin_Powell_0001.jpg", "Colin_Powell/Colin_Powell_0002.jpg",
                 "George_W_Bush/George_W_Bush_0001.jpg"):  # fmt: skip
        pixels = decode((lfw / name).read_bytes(), analyzer.settings.decode).pixels
        detections = analyzer.detector.detect(pixels)
        out.append((pixels, [max(detections, key=lambda d: d.area)]))
    return out


@pytest.mark.parametrize("model", ["sface-2021dec", "dlib-resnet-v1"])
@pytest.mark.parametrize("flip", [False, True])
def test_same_person_scores_above_different_people(model, flip, faces, cache_dir):
    embedder = load_embedder(ModelCache(Settings(cache_dir=cache_dir).models_dir),
                             get_model(model), flip)  # fmt: skip
    vectors = np.concatenate([embed_faces(embedder, px, dets) for px, dets in faces])
    assert vectors.shape == (3, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    # dlib's vectors all lie in one cone (cosines of strangers near 0.8), so the gap is
    # narrower than SFace's; measured 0.96 vs 0.81 for dlib, 0.60 vs 0.04 for SFace.
    assert same > different + 0.1, (same, different)


def test_the_two_models_crop_differently(faces, cache_dir):
    cache = ModelCache(Settings(cache_dir=cache_dir).models_dir)
    pixels, dets = faces[0]
    sface = load_embedder(cache, get_model("sface-2021dec")).crops(pixels, dets)
    dlib = load_embedder(cache, get_model("dlib-resnet-v1")).crops(pixels, dets)
    assert sface[0].shape == (112, 112, 3) and dlib[0].shape == (150, 150, 3)
