#!/usr/bin/env bash
# The code search on every problem of the HumanEval dev half (77; bench/run_code_search.sh used
# the first 40, which separated too few configurations). Resumable: rerun the same command,
# the study lives in bench/results/search/code_search_dev77.db. Draws on the bank of
# bench/run_bank.sh (greedy and samples of both models on the dev half), so trials pay for
# repairs and test inputs only. The winner goes to examples/code_searched_dev77.pipe until it
# is compared with examples/code_searched.pipe on the test half.
set -euo pipefail
cd "$(dirname "$0")/.."
exec archon search examples/code_search.pipe --dataset humaneval \
  --trials 40 --screen-items 3 --chunk-size 8 --budget-seconds 4800 \
  --no-baselines --progress lines --seed 0 --study code_search_dev77 \
  --storage sqlite:///bench/results/search/code_search_dev77.db \
  --bank bench/banks/humaneval-code.bank \
  --plots bench/results/search --out examples/code_searched_dev77.pipe "$@"
