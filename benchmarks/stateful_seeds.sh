#!/usr/bin/env bash
# The stateful detector over seeds, as the README reports it: for each seed, train on DATA's
# training split (no ratio), convert at int8 and int16x8, mix 30 one-minute test streams of that
# seed's test groups (edge-sed data mix), and score both bundles with edge-sed evaluate.
# Resumable (finished steps are skipped). Then: python benchmarks/stateful_seeds.py WORK
#   bash benchmarks/stateful_seeds.sh DATA WORK [SEEDS...]    e.g. ../shared/datasets/real-dev out/rd 0 1 2 3 4
set -u
cd "$(dirname "$0")/.."
E=.venv/bin/edge-sed
D=$1; W=$2; shift 2
for s in "${@:-0 1 2 3 4}"; do
  [ -f "$W/runs/s$s/metrics.json" ] || $E train --data "$D" --form stateful --ratio none --seed "$s" --threads 1 --out "$W/runs/s$s" > "$W/train-s$s.log" 2>&1
  [ -f "$W/bundles/s$s/convert-report.json" ] || $E convert "$W/runs/s$s" --levels int8,int16x8 --out "$W/bundles/s$s" > "$W/convert-s$s.log" 2>&1
  [ -f "$W/streams/s$s/mix-029.csv" ] || $E data mix "$D" --split test --seed "$s" --streams 30 --seconds 60 --out "$W/streams/s$s" > /dev/null
  for lv in int8 int16x8; do
    [ -s "$W/eval-s$s-$lv.json" ] || $E evaluate "$W/bundles/s$s/$lv" "$W/streams/s$s" --json > "$W/eval-s$s-$lv.json"
  done
done
