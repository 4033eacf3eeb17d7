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

# Calibration of each recogniser on LFW's development split (shipped in the package).
fs eval calibrate --pairs "$DATA/lfw/pairsDevTrain.txt" --out src/facesearch/models/calibration
fs eval calibrate --model dlib-resnet-v1 --pairs "$DATA/lfw/pairsDevTrain.txt" \
    --out src/facesearch/models/calibration
# LFW 10-fold verification, SFace with and without test-time flip.
fs eval verify --pairs "$DATA/lfw/pairs.txt" --flip --out "$OUT/lfw-sface"
# SFace, dlib and their score fusion on the first 100 matched + 100 mismatched pairs of each fold.
fs eval verify --pairs "$DATA/lfw/pairs.txt" --per-fold 100 \
    --model sface-2021dec --model dlib-resnet-v1 --out "$OUT/lfw-fusion-slice"
# The same on all 6,000 pairs (dlib embeds about 8 faces/s on 2 quiet cores).
fs eval verify --pairs "$DATA/lfw/pairs.txt" \
    --model sface-2021dec --model dlib-resnet-v1 --out "$OUT/lfw-fusion"
# 1:N identification with 0, 1k, 5k and all distractors (LFW one-image people + UTKFace).
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --out "$OUT/identify"
# The same with LFW's own one-image people as the only distractors.
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --counts 0,1000,all \
    --out "$OUT/identify-lfw-only"
# Distractors that are gallery people: candidates for review by eye (contact sheets go
# to /tmp/facesearch-duplicate-sheets), the control list; the verdicts are in
# bench/distractors/lfw-duplicates.csv.
PYTHONPATH=src python bench/distractor_duplicates.py \
    --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --reviewed bench/distractors/lfw-duplicates.csv
# Identification on the cleaned distractor set, and the control (as many of the hardest
# unconfirmed distractors left out instead).
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --exclude bench/distractors/lfw-duplicates.csv --out "$OUT/identify-cleaned"
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --counts 0,1000,all \
    --exclude bench/distractors/lfw-duplicates.csv --out "$OUT/identify-lfw-only-cleaned"
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --exclude "$OUT/distractor-duplicates/control-hardest.txt" --out "$OUT/identify-control"
# Enrolling only faces of quality >= 0.7.
fs eval identify --gallery "$DATA/lfw/images_deepfunneled" --distractors "$DATA/utkface" \
    --min-quality 0.7 --out "$OUT/identify-q07"
# False match rate per demographic group: all faces, adults, faces of quality >= 0.7.
fs eval demographics --images "$DATA/utkface" --out "$OUT/demographics"
fs eval demographics --images "$DATA/utkface" --ages 18-60 --out "$OUT/demographics-adults"
fs eval demographics --images "$DATA/utkface" --min-quality 0.7 --out "$OUT/demographics-q07"
# Candidate causes of the race differential among adults (same-person pairs, age, gender,
# image detail, quality).
PYTHONPATH=src python bench/demographic_causes.py --images "$DATA/utkface"
# Resident memory of a full evaluation run with two workers and flip, sampled every 2 s.
PYTHONPATH=src python bench/eval_memory.py --name verify-flip-2workers-1200pairs -- \
    --workers 2 eval verify --pairs "$DATA/lfw/pairs.txt" --per-fold 60 --flip --no-cache \
    --out /tmp/eval-memory
# Speed per face of each recogniser, plain and flipped.
PYTHONPATH=src python bench/recognisers.py --images 100
