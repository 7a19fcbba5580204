#!/usr/bin/env bash
# The grasp templates models/leap_transfer was trained on (issue 22), regenerated: one command, resumable.
#
#     bash scripts/make_transfer_templates.sh TEMPLATE_DIR
#
# For training instances 0-7 of every category and each of its parts, `diffgrasp template make --from-plan`:
# the instance stands on the simulated table (turned 67 deg per instance), `leap` plans around the part, and
# the first grasp the simulated hand closes on with at least 60 % of its contacts on the part and then lifts
# is the template. Some combinations find none (the log says why). About 15 minutes on 2 cores; no ../shared.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/make_transfer_templates.sh TEMPLATE_DIR}
mkdir -p "$out"
for instance in 0 1 2 3 4 5 6 7; do
  for category_part in mug:handle mug:body bottle:neck bottle:body bowl:rim bowl:body hammer:handle hammer:head \
                       box:body box:lid; do
    category=${category_part%%:*}; part=${category_part##*:}
    file="$out/${category}_${part}_${instance}.npz"
    [ -f "$file" ] && continue
    .venv/bin/diffgrasp template make --from-plan --category "$category" --part "$part" --instance "$instance" \
      --yaw $(( (instance * 67) % 360 )) --seed "$instance" --out "$file" > "${file%.npz}.log" 2>&1 \
      && rm "${file%.npz}.log" || echo "no template for $category $part on instance $instance: see ${file%.npz}.log"
  done
done
