#!/usr/bin/env bash
# Reproduce the model shipped in codemlm/default_model with the project's own pipeline.
#
#   bash scripts/train_default_model.sh              # 2 CPU cores, ~2 hours (how it was trained)
#   bash scripts/train_default_model.sh --gpu        # one H100/H200, ~10 minutes, >= 300M tokens
#   bash scripts/train_default_model.sh [--gpu] --dry-run   # print and validate every step, train nothing
#
# 1. corpus: the Python standard library + the sources of fetch_default_corpus.sh, 8k vocabulary
# 2. MLM phase 1: token masking at 30% (compact.yaml / gpu-default.yaml)
# 3. MLM phase 2: AST-aware span masking from phase 1, learning rate decayed (*-spans.yaml)
# 4. export (float16) into codemlm/default_model with its card, evaluated on held-out code
# Training continues an earlier run when INIT_FROM names a model directory (cumulative
# tokens are recorded in the card). Nothing is overwritten before the export of step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

gpu=0
dry=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "train_default_model: unknown option $arg (use --gpu, --dry-run)" >&2; exit 2 ;;
  esac
done

PY=${PY:-.venv/bin/python}
CODEMLM=${CODEMLM:-.venv/bin/codemlm}
SRC=${SRC:-data/default-src}
DATA=${DATA:-data/default8k}
RUNS=${RUNS:-runs}
EXPORT=${EXPORT:-codemlm/default_model}
INIT_FROM=${INIT_FROM:-}

if [ "$gpu" = 1 ]; then
  phase1=gpu-default phase2=gpu-default-spans
  if [ "$dry" = 0 ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "train_default_model: --gpu needs a CUDA GPU and torch sees none; nothing was written" >&2
    exit 2
  fi
else
  phase1=compact phase2=compact-spans
fi

# In a dry run each training step only resolves and validates its config (--print-config).
step() { echo "+ $*"; if [ "$dry" = 0 ]; then "$@"; fi; }
train() {
  if [ "$dry" = 1 ]; then
    echo "+ $CODEMLM train $*"
    "$CODEMLM" train "$@" --print-config >/dev/null
  else
    "$CODEMLM" train "$@"
  fi
}

if [ ! -d "$DATA/tokens" ]; then
  [ -d "$SRC" ] || step bash scripts/fetch_default_corpus.sh "$SRC"
  stdlib=$("$PY" -c "from codemlm.sources import stdlib_root; print(stdlib_root())")
  step "$CODEMLM" corpus build "$stdlib" "$SRC/py" "$SRC/js" --out "$DATA" --vocab-size 8192 --seq-len 256 --num-proc 2
fi

train --config "training/configs/$phase1.yaml" --data "$DATA" --out "$RUNS/$phase1" --no-progress \
  ${INIT_FROM:+--init-from "$INIT_FROM"}
train --config "training/configs/$phase2.yaml" --data "$DATA" --out "$RUNS/$phase2" --no-progress \
  --init-from "$RUNS/$phase1/model"
step "$PY" scripts/export_default_model.py "$RUNS/$phase2/model" "$EXPORT" \
  --runs "$RUNS/$phase1" "$RUNS/$phase2" --data "$DATA"
