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
# Every call of the two code models in the cache (the bank pipe's, and any search's or eval's
# on the same problems) goes into the bank; rows written by older versions without their
# request text go in too, but import cannot check their keys against a request.
archon cache export bench/banks/humaneval-code.bank \
  --model local/qwen2.5-coder-1.5b --model local/qwen2.5-coder-0.5b
