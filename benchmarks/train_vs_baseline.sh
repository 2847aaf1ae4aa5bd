#!/usr/bin/env bash
# Training throughput of `codemlm train` now against the code the quality wave started from
# (issue 15: "CPU training tokens/s >= 2x today's for the same shape"), in one run.
#
#   bash benchmarks/train_vs_baseline.sh [BASELINE_REV]     # default e2c8b91, the wave's start
#   STEPS=60 ROUNDS=2 PRESET=small bash benchmarks/train_vs_baseline.sh
#
# The baseline is checked out into a temporary git worktree and run with this checkout's
# virtual environment (PYTHONPATH puts its packages first), on the same data directory
# (data/default8k) and the same shape. Three rows, alternating round by round so load drifts
# hit every row alike:
#   baseline  the wave-start code with the wave-start recipe (scripts/train_default_model.sh
#             then: mixed span masking, batch 16, precision auto = fp32 on a CPU, 1 loader worker)
#   same      today's code, the very same command (precision auto now means bf16 where the CPU
#             has it natively)
#   recipe    today's code with today's masking recipe (token masking 30%, as compact.yaml)
#   ungrouped today's code, the same command with data.group_by_length=false (random batches,
#             as before 2026-12-01), to show what grouping windows by length adds
# Each row reports the tokens/s of its last logging interval (the second half of the run:
# start-up, data loading and the first steps excluded), as `codemlm train` logs it; the ratio
# is against the baseline's best round. Run it on a quiet machine and record the load.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

BASE_REV=${1:-e2c8b91}
STEPS=${STEPS:-60}
ROUNDS=${ROUNDS:-2}
PRESET=${PRESET:-small}
DATA=${DATA:-data/default8k}
PY=$(pwd)/.venv/bin/python
ROOT=$(pwd)
WORK=$(mktemp -d /tmp/codemlm-train-vs-baseline.XXXXXX)
cleanup() {
  git -C "$ROOT" worktree remove --force "$WORK/baseline" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -d "$DATA/tokens" ] || { echo "train_vs_baseline: no corpus at $DATA (codemlm corpus build ... --out $DATA)" >&2; exit 2; }
git worktree add --detach "$WORK/baseline" "$BASE_REV" >/dev/null 2>&1 \
  || { echo "train_vs_baseline: cannot check out $BASE_REV" >&2; exit 2; }

HALF=$((STEPS / 2))
COMMON=(train --config "$PRESET" --data "$ROOT/$DATA" --max-steps "$STEPS" --batch-size 16 --lr 2e-3
  --set optim.warmup_steps=60 --set trainer.compile=false --set trainer.val_check_interval=100000
  --set trainer.limit_val_batches=1 --set trainer.checkpoint_every=100000 --set "trainer.log_every=$HALF"
  --num-workers 1 --no-progress)

run_row() {  # name, code dir, extra args...
  local name=$1 code=$2; shift 2
  local out="$WORK/$name-$round"
  (cd "$code" && PYTHONPATH="$code" "$PY" -m codemlm "${COMMON[@]}" --out "$out" "$@" >"$out.log" 2>&1) \
    || { echo "train_vs_baseline: the $name run failed (log below)" >&2; tail -20 "$out.log" >&2; exit 1; }
  "$PY" - "$out/model/config.json" "$name" "$round" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))["summary"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{summary['metrics']['train/tokens_per_s']:.1f}")
EOF
}

RESULTS="$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  run_row baseline "$WORK/baseline" | tee -a "$RESULTS"
  run_row same "$ROOT" | tee -a "$RESULTS"
  run_row recipe "$ROOT" --set masking.strategy=token --set masking.rate=0.3 --set masking.replacement=mask | tee -a "$RESULTS"
  run_row ungrouped "$ROOT" --set data.group_by_length=false | tee -a "$RESULTS"
done

"$PY" - "$RESULTS" "$PRESET" "$BASE_REV" "$STEPS" <<'EOF'
import sys
best: dict[str, float] = {}
for line in open(sys.argv[1]):
    name, _, rate = line.split("\t")
    best[name] = max(best.get(name, 0.0), float(rate))
print(f"\n{sys.argv[2]}, {sys.argv[4]} steps x 16 windows, best round each (tokens/s of the last interval)")
print("| row | tokens/s | / baseline |")
print("|---|---|---|")
for name in ("baseline", "ungrouped", "same", "recipe"):
    print(f"| {name} | {best[name]:,.0f} | {best[name] / best['baseline']:.2f}x |")
print(f"baseline = {sys.argv[3]}")
EOF
