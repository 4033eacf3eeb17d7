#!/usr/bin/env bash
# Every accuracy figure in MODEL_CARD.md, from ../shared/data (or $FACESEARCH_DATA).
# Embeddings are cached per model and file content (cache folder/eval/), so a second
# run takes seconds; the first embeds about 23,000 images (LFW and UTKFace) per model.
# Reports (JSON) and plots (PNG) go to bench/results/eval/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${FACESEARCH_DATA:-../shared/data}"
OUT=bench/results/eval
fs() { PYTHONPATH=src python -m facesearch "$@"; }

# Calibration of the default recogniser on LFW's development split (shipped in the package).
fs eval calibrate --pairs "$DATA/lfw/pairsDevTrain.txt" --out src/facesearch/models/calibration
# LFW 10-fold verification, SFace with and without test-time flip.
fs eval verify --pairs "$DATA/lfw/pairs.txt" --flip --out "$OUT/lfw-sface"
# SFace, dlib and their score fusion on the first 100 matched + 100 mismatched pairs of each fold.
fs eval verify --pairs "$DATA/lfw/pairs.txt" --per-fold 100 \
    --model sface-2021dec --model dlib-resnet-v1 --out "$OUT/lfw-fusion-slice"
# 1:N identification with 0, 1k, 5k and all distractors (LFW one-image people + UTKFace).
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --out "$OUT/identify"
# The same with LFW's own one-image people as the only distractors.
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --counts 0,1000,all \
    --out "$OUT/identify-lfw-only"
# Enrolling only faces of quality >= 0.7.
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --min-quality 0.7 --out "$OUT/identify-q07"
# False match rate per demographic group: all faces, adults, faces of quality >= 0.7.
fs eval demographics --images "$DATA/utkface" --out "$OUT/demographics"
fs eval demographics --images "$DATA/utkface" --ages 18-60 --out "$OUT/demographics-adults"
fs eval demographics --images "$DATA/utkface" --min-quality 0.7 --out "$OUT/demographics-q07"
# Speed per face of each recogniser, plain and flipped.
PYTHONPATH=src python bench/recognisers.py --images 100
