#!/usr/bin/env bash
# Install facesearch, fetch and verify its models, index a folder of photos and
# search it with one of them. Usage: bash scripts/quickstart.sh [PHOTO_FOLDER] [PROBE]
set -euo pipefail
cd "$(dirname "$0")/.."

photos="${1:-../shared/data/wild}"
probe="${2:-$photos/img2.jpg}"
export FACESEARCH_DATA_DIR="${FACESEARCH_DATA_DIR:-$PWD/demo-data}"

python3 -m pip install --quiet -e .
facesearch models fetch
facesearch collections list --json | grep -q '"name": "demo"' ||
  facesearch collections create demo --source "photos in $photos" \
    --legal-basis "demonstration on test photos" --retention-days 30
facesearch ingest "$photos" --collection demo
facesearch stats
facesearch search "$probe" --top 5 --sheet "$FACESEARCH_DATA_DIR/matches.jpg" \
  --purpose "verification of published material" --case quickstart-demo
