# Shared by the training-step benchmarks (sourced; needs $bin and $py). The one description of "our step" that
# bench/train_step_reference.py mirrors: ResNet-18 from scratch with the ImageNet stem, the paper's head
# (dropout 0.5, unit feature, scale 1), Adam without weight decay, no warm-up, no unlabeled sweep.

# ours_step_run RUNS_ROOT RUN_ID SIZE BATCH EPOCHS STEPS [--set ...]: one sitfer run on the synthetic shards.
ours_step_run() {
  local root=$1 id=$2 size=$3 batch=$4 epochs=$5 steps=$6; shift 6
  "$bin" run -q --split synthetic_10pct --preset sitfer --scale cpu --runs-root "$root" --run-id "$id" --device cpu \
    --set model.arch=resnet18 --set model.init=scratch --set model.stem=imagenet --set model.dropout=0.5 \
    --set model.classifier_scale=1 --set optim.kind=adam --set optim.weight_decay=0 --set optim.warmup_steps=0 \
    --set model.image_size="$size" --set schedule.batch_labeled="$batch" --set schedule.batch_unlabeled="$batch" \
    --set schedule.epochs="$epochs" --set schedule.steps_per_epoch="$steps" --set run.pseudo_labels_every=0 "$@"
}

# last_train_values METRICS_PARQUET METRIC...: the last training-epoch value of each metric, space-separated.
last_train_values() {
  "$py" - "$@" <<'PY'
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pandas()
print(*(t[(t.metric == m) & (t.split == "train")].value.iloc[-1] for m in sys.argv[2:]))
PY
}
