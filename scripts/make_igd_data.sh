#!/usr/bin/env bash
# The training and validation data of models/igd, regenerated (issue 21): one command, resumable.
#
#     bash scripts/make_igd_data.sh DATA_DIR [--workers N]
#
# Chunk i of a dataset is a function of (seed, i), so these chunk counts give the datasets the shipped
# weights were trained on (the runs were stopped at these counts). Needs ../shared/objects; about 3.5 h
# on 2 cores (the checked labels of the first set are most of it), 260 MB, plus the rendered grids.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/make_igd_data.sh DATA_DIR [--workers N]}
shift
dg=".venv/bin/diffgrasp datagen"
.venv/bin/python -m diffgrasp_ros.sim.generate_objects --extra-families --out "$out/extra_objects"
$dg --out "$out/checked" --chunks 349 --labels checked --randomise-physics --max-negative-ratio 3 --seed 21 "$@"
$dg --out "$out/analytic" --chunks 155 --labels analytic --randomise-physics --points-per-scene 32 --seed 22 "$@"
$dg --out "$out/extra" --objects "$out/extra_objects/train" --chunks 78 --labels analytic --randomise-physics \
    --points-per-scene 32 --seed 23 "$@"
# Held-out families, for the validation losses only (never trained on).
$dg --out "$out/val_families" --chunks 25 --labels checked --randomise-physics --max-negative-ratio 3 \
    --objects-split families --seed 2101 "$@"
for set in checked analytic extra val_families; do
  .venv/bin/diffgrasp render-grids --data "$out/$set" "$@"
done
