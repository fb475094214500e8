#!/usr/bin/env bash
# Fill the call cache with the code bank's calls on the HumanEval dev and test halves,
# resumably (rerun to continue), then export them as bench/banks/humaneval-code.bank.
set -euo pipefail
cd "$(dirname "$0")/.."
records=bench/results/records/bank
mkdir -p "$records"
for split in dev test; do
  archon eval bench/archs/bank_code.pipe --dataset humaneval --split "$split" \
    --records "$records/humaneval-$split.jsonl" --resume --concurrency 4 "$@"
done
