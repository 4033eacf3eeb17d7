"""An operator's own ONNX recogniser, declared by path, sha256 and licence.

The valid declaration is SFace's own fp32 graph run through onnxruntime as a
declared model, so its embeddings can be checked against the built-in SFace; the
refusals use real files: a changed byte, a small valid graph with the wrong
input size, and bytes that are no graph.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facesearch.config import DeclaredModel, Settings
from facesearch.engine import Engine
from facesearch.errors import ModelMismatch, ModelUnavailable
from facesearch.models import declared
from facesearch.models.cache import ModelCache, sha256_file
from facesearch.models.registry import MODELS
from facesearch.models.registry import get as get_model
from facesearch.pipeline.analyze import load_embedder
from facesearch.pipeline.decode import decode
from facesearch.pipeline.embed import embed_faces

LICENCE = "Apache-2.0 (test copy of SFace, OpenCV model zoo)"


@pytest.fixture(autouse=True)
def _forget_declared():
    yield
    for name in [n for n, s in MODELS.items() if s.declared_path is not None]:
        del MODELS[name]


@pytest.fixture(scope="module")
def sface_file(cache_dir) -> Path:
    cache = ModelCache(Settings(cache_dir=cache_dir).models_dir)
    return cache.ensure(get_model("sface-2021dec"))


def declaration(path: Path, **changes) -> DeclaredModel:
    fields = dict(
        name="my-sface", path=path, sha256=sha256_file(path), licence=LICENCE,
        embedding_dim=128, mean=0.0, scale=1.0, runtime="onnxruntime",
    )  # fmt: skip
    fields.update(changes)
    return DeclaredModel(**fields)


def tiny_graph(path: Path, size: int) -> Path:
    """A valid recogniser-shaped graph: NCHW image in, 8 values out."""
    weight = numpy_helper.from_array(np.eye(3, 8, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 8])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_declared_model_embeds_like_the_builtin_one(sface_file, analyzer, lfw, cache_dir):
    spec = declared.register_declared(declaration(sface_file))
    assert spec.licence.endswith(LICENCE) and get_model("my-sface") is spec
    cache = ModelCache(Settings(cache_dir=cache_dir).models_dir)
    mine = load_embedder(cache, spec)
    builtin = load_embedder(cache, get_model("sface-2021dec"))
    for name in ("Colin_Powell/Colin_Powell_0001.jpg", "George_W_Bush/George_W_Bush_0001.jpg"):
        pixels = decode((lfw / name).read_bytes(), analyzer.settings.decode).pixels
        faces = analyzer.detector.detect(pixels)[:1]
        a, b = embed_faces(mine, pixels, faces), embed_faces(builtin, pixels, faces)
        assert float(a[0] @ b[0]) > 0.9999


def test_wrong_sha256_is_refused_and_nothing_stored_is_touched(tmp_path, sface_file, settings):
    with Engine(settings) as engine:
        engine.create_collection("kept", "test", "test")
    catalog = settings.catalog_path
    before = (catalog.read_bytes(), catalog.stat().st_mtime_ns)
    copy = tmp_path / "altered.onnx"
    shutil.copyfile(sface_file, copy)
    with copy.open("r+b") as f:  # one changed byte at the end of the weights
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    bad = declaration(copy, sha256=sha256_file(sface_file))
    broken = settings.model_copy(update={"declared_models": [bad], "embedder": "my-sface"})
    with pytest.raises(ModelUnavailable, match=r"sha256 is .* but .* was declared"):
        Engine(broken)
    assert (catalog.read_bytes(), catalog.stat().st_mtime_ns) == before


def test_wrong_input_shape_is_refused(tmp_path):
    graph = tiny_graph(tmp_path / "tiny64.onnx", 64)
    with pytest.raises(ModelUnavailable, match=r"shape \[\?, 3, 64, 64\].*\[batch, 3, 112, 112\]"):
        declared.check(declaration(graph, embedding_dim=8))
    # The same graph declared with its real crop size passes; a wrong output size does not.
    assert declared.check(declaration(graph, embedding_dim=8, crop_size=64)).layout.crop_size == 64
    with pytest.raises(ModelUnavailable, match="embedding of 512 values"):
        declared.check(declaration(graph, embedding_dim=512, crop_size=64))


def test_unreadable_graph_and_missing_file_are_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf" * 100)
    with pytest.raises(ModelUnavailable, match="not a readable ONNX graph"):
        declared.check(declaration(junk))
    with pytest.raises(ModelUnavailable, match="no such file"):
        declared.check(declaration(junk).model_copy(update={"path": tmp_path / "gone.onnx"}))


def test_search_never_mixes_models(settings, analyzer, lfw, sface_file):
    with Engine(settings, analyzer=analyzer) as engine:
        engine.create_collection("c", "test", "test")
        engine.ingest(sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2], "c")
    other = settings.model_copy(
        update={"declared_models": [declaration(sface_file)], "embedder": "my-sface"}
    )
    photo = (lfw / "Colin_Powell" / "Colin_Powell_0003.jpg").read_bytes()
    with Engine(other) as engine, pytest.raises(ModelMismatch, match="cannot be compared"):
        engine.search(photo)


def test_models_list_shows_the_declared_licence(tmp_path, sface_file, cache_dir):
    env = dict(os.environ, FACESEARCH_CACHE_DIR=str(cache_dir),
               FACESEARCH_DATA_DIR=str(tmp_path / "data"),
               FACESEARCH_DECLARED_MODELS=json.dumps([json.loads(
                   declaration(sface_file).model_dump_json())]))  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "facesearch", "models", "list", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["my-sface"]["licence"] == f"declared by the operator: {LICENCE}"
    assert rows["my-sface"]["installed"] is True
    assert rows["my-sface"]["path"] == str(sface_file)
    env["FACESEARCH_DECLARED_MODELS"] = env["FACESEARCH_DECLARED_MODELS"].replace(
        sha256_file(sface_file), "0" * 64
    )
    done = subprocess.run([sys.executable, "-m", "facesearch", "models", "list"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "was declared" in done.stderr
    assert "Traceback" not in done.stderr
