#!/usr/bin/env bash
# The code search of bench/results/search.md: examples/code_search.pipe on the first 40
# problems of the HumanEval dev half (and 40 of the test half), resumable (rerun the same
# command: the study lives in bench/results/search/code_search.db).
set -euo pipefail
cd "$(dirname "$0")/.."
exec archon search examples/code_search.pipe --dataset humaneval --limit 40 \
  --trials 40 --screen-items 3 --chunk-size 5 --budget-seconds 5400 \
  --no-baselines --progress lines --seed 0 \
  --storage sqlite:///bench/results/search/code_search.db \
  --out examples/code_searched.pipe "$@"
