#!/usr/bin/env bash
# Regenerate the published files of one suite from a results directory:
#   quickstart, zoo (leaderboards):
#     leaderboards/<suite>.md     Markdown leaderboard (GitHub)
#     leaderboards/<suite>.json   JSON rows (schema: docs/leaderboards.md)
#     leaderboards/<suite>/*.png  each leaderboard over training (from `benchbase report`)
#   memorization_transition, strong_generalization, tau_mem_seeds, tau_mem_width,
#   tau_mem_batch_lr, memorization_score (training dynamics):
#     <suite>.md, <suite>.json and every figure and table of `benchbase plot`
#   metric_calibration (sensitivity of the memorization metrics):
#     <suite>.md (detection table), <suite>.json, <suite>.detection_*.png/.svg
# usage: leaderboards/regenerate.sh SUITE [RESULTS_DIR]     (RESULTS_DIR defaults to results)
# Set BENCHBASE to the command to use (default: benchbase on the PATH).
set -euo pipefail
suite=${1:?usage: leaderboards/regenerate.sh SUITE [RESULTS_DIR]}
results=${2:-results}
bb=${BENCHBASE:-benchbase}
here=$(cd "$(dirname "$0")" && pwd)

if [ "$suite" = metric_calibration ]; then
    $bb sensitivity --results "$results" --suite "$suite" --out "$here"
    echo "regenerated leaderboards/$suite.md, $suite.json and $suite.detection_* from $results"
    exit 0
fi

$bb leaderboard --results "$results" --suite "$suite" --format markdown --out "$here/$suite.md"
$bb leaderboard --results "$results" --suite "$suite" --format json --out "$here/$suite.json"
case "$suite" in
    memorization_transition|strong_generalization|tau_mem_seeds|tau_mem_width|tau_mem_batch_lr|memorization_score)
        $bb plot --results "$results" --suite "$suite" --out "$here"
        echo "regenerated leaderboards/$suite.md, $suite.json and $suite.* figures from $results"
        ;;
    *)
        site=$(mktemp -d)
        trap 'rm -rf "$site"' EXIT
        $bb report --results "$results" --suite "$suite" --out "$site/site"
        mkdir -p "$here/$suite"
        rm -f "$here/$suite"/*.png
        cp "$site"/site/tables/*.png "$here/$suite/"
        echo "regenerated leaderboards/$suite.md, $suite.json and $suite/*.png from $results"
        ;;
esac
