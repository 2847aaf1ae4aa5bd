#!/usr/bin/env bash
# Reproduce the model shipped in codemlm/default_model: the project's own pipeline end to end.
#   1. corpus: the Python standard library + the sources fetched by fetch_default_corpus.sh
#   2. MLM pretraining of the `small` preset with the default AST-aware (mixed) masking
#   3. the contrastive search stage, starting from the MLM model
#   4. export (float16 weights) into codemlm/default_model and evaluate on the held-out sets
# The shipped model was trained on a 2-core CPU (no GPU was lent), so the step counts below
# are small; on a GPU use `--config small` / `--config search-small` as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
SRC=${SRC:-data/default-src}
MLM_STEPS=${MLM_STEPS:-600}
SEARCH_STEPS=${SEARCH_STEPS:-100}

[ -d "$SRC" ] || bash scripts/fetch_default_corpus.sh "$SRC"
stdlib=$($PY -c "from codemlm.sources import stdlib_root; print(stdlib_root())")
[ -d data/default/tokens ] || .venv/bin/codemlm corpus build "$stdlib" "$SRC/py" "$SRC/js" \
  --out data/default --seq-len 256 --num-proc 2

.venv/bin/codemlm train --config small --data data/default --max-steps "$MLM_STEPS" --batch-size 16 --lr 2e-3 \
  --set optim.warmup_steps=60 --set trainer.compile=false --set trainer.val_check_interval=100 \
  --set trainer.limit_val_batches=8 --set trainer.checkpoint_every=50 --set trainer.log_every=10 \
  --num-workers 1 --out runs/default-mlm --no-progress

.venv/bin/codemlm train --config search-small --data data/default --init-from runs/default-mlm/model \
  --max-steps "$SEARCH_STEPS" --batch-size 32 --set optim.warmup_steps=15 --set trainer.val_check_interval=50 \
  --set trainer.limit_val_batches=4 --set trainer.checkpoint_every=50 --set trainer.log_every=10 \
  --set task_options.max_code_tokens=128 --set task_options.max_query_tokens=48 \
  --set task_options.max_validation_pairs=500 --num-workers 0 --out runs/default-search --no-progress

$PY scripts/export_default_model.py runs/default-search/model codemlm/default_model
