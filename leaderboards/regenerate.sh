#!/usr/bin/env bash
# Regenerate the published tables and plots of one suite from a results directory:
#   leaderboards/<suite>.md     Markdown leaderboard (GitHub)
#   leaderboards/<suite>.json   JSON rows (schema: docs/leaderboards.md)
#   leaderboards/<suite>/*.png  each leaderboard over training (from `benchbase report`)
# usage: leaderboards/regenerate.sh SUITE [RESULTS_DIR]     (RESULTS_DIR defaults to results)
# Set BENCHBASE to the command to use (default: benchbase on the PATH).
set -euo pipefail
suite=${1:?usage: leaderboards/regenerate.sh SUITE [RESULTS_DIR]}
results=${2:-results}
bb=${BENCHBASE:-benchbase}
here=$(cd "$(dirname "$0")" && pwd)
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT

$bb leaderboard --results "$results" --suite "$suite" --format markdown --out "$here/$suite.md"
$bb leaderboard --results "$results" --suite "$suite" --format json --out "$here/$suite.json"
$bb report --results "$results" --suite "$suite" --out "$site/site"
mkdir -p "$here/$suite"
rm -f "$here/$suite"/*.png
cp "$site"/site/tables/*.png "$here/$suite/"
echo "regenerated leaderboards/$suite.md, $suite.json and $suite/*.png from $results"
