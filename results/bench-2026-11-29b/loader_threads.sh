#!/usr/bin/env bash
cd /work/main
bin=/work/bin2/train
for r in 1 2 3; do for lt in 0 1; do
  rm -rf /work/tmp/ltruns
  $bin run -q --split synthetic_10pct --preset sitfer --scale cpu --runs-root /work/tmp/ltruns --run-id b --device cpu \
    --set model.arch=resnet18 --set model.init=scratch --set model.stem=imagenet --set model.dropout=0.5 \
    --set model.classifier_scale=1 --set optim.kind=adam --set optim.weight_decay=0 \
    --set model.image_size=64 --set schedule.batch_labeled=16 --set schedule.batch_unlabeled=16 \
    --set schedule.epochs=1 --set schedule.steps_per_epoch=40 --set run.pseudo_labels_every=0 \
    --set optim.warmup_steps=0 --set run.loader_threads=$lt > /dev/null 2>&1
  ~/.cache/sitfer/torch-2.13.0/venv/bin/python - /work/tmp/ltruns/b/metrics.parquet $r $lt <<'PY'
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pandas()
g = lambda m: t[(t.metric == m) & (t.split == "train")].value.iloc[-1]
print(f"round {sys.argv[2]} loader_threads={sys.argv[3]}: {g('images_per_s'):.1f} img/s, input wait {100*g('input_wait_fraction'):.1f}%")
PY
done; done
