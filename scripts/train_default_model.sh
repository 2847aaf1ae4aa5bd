#!/usr/bin/env bash
# Reproduce the model shipped in codemlm/default_model with the project's own pipeline.
#
#   bash scripts/train_default_model.sh              # 2 CPU cores, ~6.5 hours
#   bash scripts/train_default_model.sh --gpu        # one H100/H200, ~10 minutes of MLM training (>= 300M tokens), then the search stages
#   bash scripts/train_default_model.sh [--gpu] --dry-run   # print and validate every step, train nothing
#
# 1. corpus: the Python standard library + the sources of fetch_default_corpus.sh, 8k vocabulary
# 2. MLM phase 1: token masking at 30% (compact.yaml / gpu-default.yaml)
# 3. MLM phase 2: AST-aware span masking from phase 1, learning rate decayed (*-spans.yaml)
#    (CPU only) phase 3: token masking again, decayed to its floor (compact-decay.yaml)
# 4. the completion ranker fitted on holes cut from the standard library (infill_fit_ranker.py)
# 5. the static search table: the shipped one when the new tokenizer is the same (the table
#    depends on the tokenizer alone), else distilled again (training.distill_static, which
#    needs the all-MiniLM-L6-v2 teacher of the `train` extra)
# 6. the search encoder: the contrastive stage (search-compact-more.yaml, then four rounds of
#    search-compact-continue.yaml on more installed libraries), installed with the rerank
#    weight chosen on the stdlib validation set (training.search_encoder); then a second, larger
#    encoder from a `small` MLM that rereads its top 10 (search-small-second.yaml,
#    training.search_encoder --second), then a cross-encoder trained against the first
#    (search-cross.yaml, training.search_cross); with --gpu the shipped compact encoder and its
#    cross-encoder are kept when the tokenizer is the same (they run on the user's CPU)
# 7. export (float16) into codemlm/default_model with its card, evaluated on held-out code
# Training continues an earlier run when INIT_FROM names a model directory (cumulative
# tokens are recorded in the card). Nothing is overwritten before the export of step 7.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

gpu=0
dry=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
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
  phase1=gpu-default phase2=gpu-default-spans phase3= threads=8
  if [ "$dry" = 0 ] && ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "train_default_model: --gpu needs a CUDA GPU and torch sees none; nothing was written" >&2
    exit 2
  fi
else
  phase1=compact phase2=compact-spans phase3=compact-decay threads=1
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
last=$phase2
if [ -n "$phase3" ]; then
  train --config "training/configs/$phase3.yaml" --data "$DATA" --out "$RUNS/$phase3" --no-progress \
    --init-from "$RUNS/$phase2/model"
  last=$phase3
fi
MODEL="$RUNS/$last/model"

stdlib=$("$PY" -c "from codemlm.sources import stdlib_root; print(stdlib_root())")
step env OMP_NUM_THREADS="$threads" "$PY" benchmarks/infill_fit_ranker.py --source "$stdlib" --holes 1200 \
  --sources both model context --repo-files 30 --threads "$threads" --model "$MODEL" --out "$MODEL/ranker.json"

SHIPPED_TABLE=codemlm/default_model/static.safetensors
if [ "$dry" = 0 ] && "$PY" -c "import sys; from codemlm.static_embedder import StaticEmbedder; \
    StaticEmbedder.from_model_dir(sys.argv[1], table_path=sys.argv[2])" "$MODEL" "$SHIPPED_TABLE" 2>/dev/null; then
  echo "+ cp $SHIPPED_TABLE $MODEL/  (same tokenizer: the shipped static table fits)"
  cp "$SHIPPED_TABLE" "$MODEL/"
else
  step "$PY" -m training.distill_static --model-dir "$MODEL" --cache "$RUNS/static-cache" --text-form terms --head-repeat 3 \
    --epochs 10 --contrastive 1 --chunks 20000 --threads "$threads"
fi

# The search encoder: the contrastive stage from the final MLM model, then its rerank weight
# chosen on the stdlib validation set (installed as $MODEL/search_encoder only if it helps there).
# With --gpu the MLM model is the larger `small`, but the encoder re-reads 50 chunks per query
# on the user's CPU, so the shipped compact encoder stays when the tokenizer is the same (it
# reads queries and code alone; the hybrid it re-reads does not use the MLM model).
SHIPPED_ENCODER=codemlm/default_model/search_encoder
SHIPPED_CROSS=codemlm/default_model/search_cross
if [ "$gpu" = 1 ] && [ -f "$SHIPPED_ENCODER/tokenizer.json" ] && \
    { [ "$dry" = 1 ] || cmp -s "$SHIPPED_ENCODER/tokenizer.json" "$MODEL/tokenizer.json"; }; then
  echo "+ cp -r $SHIPPED_ENCODER $MODEL/search_encoder  (same tokenizer: the shipped compact search encoder)"
  if [ "$dry" = 0 ]; then rm -rf "$MODEL/search_encoder"; cp -r "$SHIPPED_ENCODER" "$MODEL/search_encoder"; fi
  cross="$SHIPPED_CROSS"  # and its cross-encoder, trained against it (weighed again below)
else
  train --config training/configs/search-compact-more.yaml --data "$DATA" --out "$RUNS/search-compact-more" \
    --no-progress --init-from "$MODEL"
  # then four continuations on more libraries, each from the last (search-compact-continue.yaml)
  encoder="$RUNS/search-compact-more"
  for round in 1 2 3 4; do
    train --config training/configs/search-compact-continue.yaml --data "$DATA" \
      --out "$RUNS/search-compact-continue$round" --no-progress --init-from "$encoder/model"
    encoder="$RUNS/search-compact-continue$round"
  done
  if ! step "$PY" -m training.search_encoder --encoder "$encoder/model" --model-dir "$MODEL" \
      --threads "$threads"; then
    echo "train_default_model: the search encoder did not help on validation; the model ships without it" >&2
  fi
  cross=
fi

if [ "$dry" = 1 ] || [ -f "$MODEL/search_encoder/config.json" ]; then
  # The second search encoder: the same contrastive stage from a `small` MLM (with --gpu the one
  # just trained; on the CPU path the shipped default model, when the tokenizer is the same), which
  # rereads the top of the first encoder's order (installed as $MODEL/search_encoder2 if it helps).
  if [ "$gpu" = 1 ]; then small_mlm="$MODEL"; else small_mlm=codemlm/default_model; fi
  if [ "$dry" = 1 ] || cmp -s "$small_mlm/tokenizer.json" "$MODEL/tokenizer.json"; then
    train --config training/configs/search-small-second.yaml --data "$DATA" --out "$RUNS/search-small" --no-progress \
      --init-from "$small_mlm"
    # and two continuations of 1,500 steps, each from the last (the shipped second encoder is the second)
    second="$RUNS/search-small"
    for round in 2 3; do
      train --config training/configs/search-small-second.yaml --data "$DATA" --out "$RUNS/search-small$round" \
        --no-progress --init-from "$second/model" --set optim.max_steps=1500 --set optim.warmup_steps=50
      second="$RUNS/search-small$round"
    done
    if ! step "$PY" -m training.search_encoder --second --encoder "$second/model" --model-dir "$MODEL" \
        --weights 0 8 10 12 16 20 --depths 10 20 30 --threads "$threads"; then
      echo "train_default_model: the second search encoder did not help on validation; the model ships without it" >&2
    fi
  else
    echo "train_default_model: no small MLM with this tokenizer to start a second search encoder from; skipped" >&2
  fi
  # then the cross-encoder, trained as a correction to the installed encoder's cosine, which
  # reads the top few last (installed as $MODEL/search_cross only if it helps on validation,
  # weighed after every installed encoder)
  if [ -z "$cross" ]; then
    train --config training/configs/search-cross.yaml --data "$DATA" --out "$RUNS/search-cross" --no-progress \
      --init-from "$MODEL/search_encoder" --set "task_options.residual_to=$MODEL/search_encoder"
    cross="$RUNS/search-cross/model"
  fi
  if [ "$dry" = 1 ] || [ -d "$cross" ]; then
    if ! step "$PY" -m training.search_cross --cross "$cross" --model-dir "$MODEL" --threads "$threads"; then
      echo "train_default_model: the cross-encoder did not help on validation; the model ships without it" >&2
    fi
  fi
fi

runs=("$RUNS/$phase1" "$RUNS/$phase2")
[ -z "$phase3" ] || runs+=("$RUNS/$phase3")
hardware=()
if [ "$gpu" = 1 ] && [ "$dry" = 0 ]; then
  hardware=(--hardware "one $("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")")
fi
step "$PY" scripts/export_default_model.py "$MODEL" "$EXPORT" --runs "${runs[@]}" --data "$DATA" "${hardware[@]}"
