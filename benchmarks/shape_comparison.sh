#!/usr/bin/env bash
# Equal-budget comparison of model shapes and masking schedules on two CPU cores (issue 15).
#
#   bash benchmarks/shape_comparison.sh [BUDGET_SECONDS]      # default 600
#   SCHEDULE=1 bash benchmarks/shape_comparison.sh ...        # also compact with token -> span masking
#   SHAPES="tiny compact" bash benchmarks/shape_comparison.sh ... # only these candidates
#
# Each candidate trains from scratch on the default corpus (data/default8k) for the number of
# steps its quiet-machine training throughput fits in the budget, so every candidate gets the
# same CPU time even when the machine is shared while this runs (the runs are niced, and a
# wall-clock limit would charge one candidate for another job's load). The throughputs come
# from one quiet run of the training-step bench, taken right before (BENCHMARKS.md):
#
#   python -m training.bench --preset tiny compact --vocab-size 8192 --seq-len 256 \
#       --batch-size 32 --steps 3 --rounds 2 --warmup 1 --precision bf16 --no-peer
#   (and the same with --preset compact --set dim=192 --set n_layers=6 --set n_heads=6 --set mlp_hidden=512)
#
# Each model is then scored on held-out code: masked-token accuracy (`codemlm eval mlm`, 15%
# token masking, boltons + dayjs) and infill on the held-out boltons cases (both sources, and the
# model's own generation alone), judged by the shipped model's ranker unless FIT_RANKER=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

BUDGET=${1:-600}
NICE=${NICE:-19}
PY=${PY:-.venv/bin/python}
CODEMLM=${CODEMLM:-.venv/bin/codemlm}
DATA=${DATA:-data/default8k}
OUT=${OUT:-runs/shapes}
HELDOUT=${HELDOUT:-$HOME/.cache/codemlm/bench/heldout_mlm}
TOKENS_PER_STEP=$((32 * 256))
mkdir -p "$OUT"

# name | quiet bf16 tokens/s | model overrides
CANDIDATES=(
  "tiny|45377|--set model.preset=tiny"
  "compact|18236|--set model.preset=compact"
  "wide|7817|--set model.preset=compact --set model.dim=192 --set model.n_layers=6 --set model.n_heads=6 --set model.mlp_hidden=512"
)
steps_for() { echo $(( $1 * BUDGET / TOKENS_PER_STEP )); }

train() {  # name steps extra-args...
  local name=$1 steps=$2; shift 2
  if [ -f "$OUT/$name/model/model.safetensors" ]; then echo "shape_comparison: $name already trained"; return; fi
  local warmup=$(( steps / 10 ))
  /usr/bin/time -f "$name wall %e s" nice -n "$NICE" "$CODEMLM" train --config training/configs/compact.yaml \
    --data "$DATA" --out "$OUT/$name" --no-progress --max-steps "$steps" \
    --set optim.schedule=linear --set optim.warmup_steps="$warmup" --set trainer.max_minutes=240 \
    --set trainer.val_check_interval=100000 "$@" >"$OUT/$name.log" 2>&1
}

SHAPES=${SHAPES:-tiny compact wide}
for entry in "${CANDIDATES[@]}"; do
  IFS='|' read -r name tps overrides <<<"$entry"
  [[ " $SHAPES " == *" $name "* ]] || continue
  # shellcheck disable=SC2086
  train "$name" "$(steps_for "$tps")" $overrides
done

# The schedule: compact, same steps, token masking for 3/4 of them (constant rate), then
# AST-aware spans for the last quarter with the rate decayed: the shipped recipe in small.
compact_steps=$(steps_for 18236)
token_steps=$(( compact_steps * 3 / 4 ))
names="$SHAPES"
if [ "${SCHEDULE:-0}" = 1 ]; then names="$names compact-spans"; fi
if [ "${SCHEDULE:-0}" = 1 ] && [ ! -f "$OUT/compact-spans/model/model.safetensors" ]; then
  train compact-token "$token_steps" --set model.preset=compact --set optim.schedule=constant
  nice -n "$NICE" "$CODEMLM" train --config training/configs/compact-spans.yaml --data "$DATA" \
    --out "$OUT/compact-spans" --no-progress --init-from "$OUT/compact-token/model" \
    --max-steps $(( compact_steps - token_steps )) --set trainer.max_minutes=240 \
    --set trainer.val_check_interval=100000 >"$OUT/compact-spans.log" 2>&1
fi

stdlib=$("$PY" -c "from codemlm.sources import stdlib_root; print(stdlib_root())")
for name in $names; do
  model="$OUT/$name/model"
  [ -f "$OUT/$name-mlm.json" ] || nice -n "$NICE" "$CODEMLM" eval mlm "$HELDOUT/boltons" "$HELDOUT/dayjs" \
    --model "$model" --json | tail -n 1 >"$OUT/$name-mlm.json"
  # The shipped model's ranker judges every candidate (fitting one per model takes ~20 minutes of
  # two cores); FIT_RANKER=1 fits each model its own, as the shipped one was.
  if [ ! -f "$model/ranker.json" ]; then
    if [ "${FIT_RANKER:-0}" = 1 ]; then
      nice -n "$NICE" "$PY" benchmarks/infill_fit_ranker.py --source "$stdlib" --holes 400 \
        --sources both model context --repo-files 30 --model "$model" --out "$model/ranker.json" >/dev/null
    else
      cp codemlm/default_model/ranker.json "$model/ranker.json"
    fi
  fi
  [ -f "$OUT/$name-infill.json" ] || nice -n "$NICE" "$CODEMLM" eval infill benchmarks/data/infill_cases.jsonl \
    --model "$model" --mode ablation --json | tail -n 1 >"$OUT/$name-infill.json"
done

"$PY" - "$OUT" "$BUDGET" $names <<'EOF'
import json, sys
from pathlib import Path
out, budget = Path(sys.argv[1]), sys.argv[2]
print(f"equal budget: {budget} s of quiet 2-core training each")
print("| candidate | params | steps | tokens | wall s | held-out acc | ppl | infill EM@1 | EM@5 | identifier EM@1 | model-only identifier EM@1 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in sys.argv[3:]:
    mlm = json.loads((out / f"{name}-mlm.json").read_text())
    inf = json.loads((out / f"{name}-infill.json").read_text())
    cfg = json.loads((out / name / "model" / "config.json").read_text())
    summaries = [cfg["summary"]]
    if name == "compact-spans":
        summaries.append(json.loads((out / "compact-token" / "model" / "config.json").read_text())["summary"])
    steps = sum(x["steps"] for x in summaries)
    tokens = sum(x["tokens"] for x in summaries)
    seconds = sum(x["seconds"] for x in summaries)
    ident = inf["by_kind"].get("identifier", {}).get("em_at_1", float("nan"))
    own = inf.get("ablation", {}).get("model", {}).get("by_kind", {}).get("identifier", {}).get("em_at_1", float("nan"))
    params = f'{cfg["summary"]["parameters"] / 1e6:.2f} M'
    print(f"| {name} | {params} | {steps} | {tokens/1e6:.1f} M | {seconds:.0f} | {mlm['accuracy']:.3f} | {mlm['perplexity']:.2f} | "
          f"{inf['overall']['em_at_1']:.3f} | {inf['overall']['em_at_5']:.3f} | {ident:.3f} | {own:.3f} |")
EOF
