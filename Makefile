# SIT-FER pipeline. Each stage is its own binary reading and writing exchange files under artifacts/:
#
#   raw data --shard--> artifacts/shards/<dataset>/ --shard split--> artifacts/splits/<split>.parquet
#   pipelines/text/*.toml --embed-text--> artifacts/text/<encoder>/<set>/
#   shards + split + text --train--> artifacts/runs/<run>/ --audit--> artifacts/reports/<run>/
#
# Every stage skips work whose inputs and config are unchanged ("up to date"); FORCE=1 reruns it.

SHELL := /bin/bash
.DEFAULT_GOAL := help

DATASET ?= synthetic
SPLIT ?= synthetic_10pct
ENCODER ?= minilm
PRESET ?= sitfer
SCALE ?= cpu
DEVICE ?= auto
TEXT_SET ?=
ON_ERROR ?= fail
# make compare: the presets (the first is the reference of the paired differences) and the number of seeds.
PRESETS ?= supervised fixmatch sitfer
SEEDS ?= 3
FERPLUS_DIR ?= data/raw/ferplus
RAFDB_DIR ?= data/raw/rafdb
AFFECTNET_DIR ?= data/raw/affectnet
export FERPLUS_DIR RAFDB_DIR AFFECTNET_DIR

CARGO ?= cargo
# One build serves every verb, `make test` included: the dev profile (dependencies and the hot crates optimised,
# see Cargo.toml), so `make demo` then `make test` compiles the workspace once. PROFILE=release for another.
PROFILE ?= dev
BIN = ./target/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
FORCE_FLAG := $(if $(FORCE),--force,)
# What names a training: `train plan` and `train run` take the same arguments.
RUN_ARGS = --split $(SPLIT) --preset $(PRESET) --scale $(SCALE) $(if $(SEED),--seed $(SEED),)
# Every verb builds the same set of binaries: building a subset would resolve dependency features differently
# and make the next verb rebuild half the tree.
STAGES := -p shard -p embed-text -p train -p audit
BUILD = bash scripts/build.sh $(PROFILE)

.PHONY: help setup test doctor shard split embed-text train audit demo build bench compare

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install libtorch (torch 2.13.0 wheel), the offline text model and the dlib face weights into ~/.cache/sitfer (once)
	@bash scripts/setup.sh

build: setup ## build every stage (the first build on 2 cores takes ~20-25 min and shows cargo's progress)
	@$(BUILD)

test: setup ## what CI runs: format check, clippy -D warnings, every test, the numerics under a second CPU kernel set
	$(CARGO) fmt --all -- --check
	@# Test units compile under clippy's driver (-D warnings; scripts/lint-rustc): the build is the lint.
	$(CARGO) test --workspace --no-run
	$(CARGO) test --workspace
	bash scripts/test_kernels.sh

doctor: setup ## report libtorch, CUDA, text model and data roots
	@$(BUILD)
	$(BIN)/train doctor

shard: ## raw dataset -> artifacts/shards/$(DATASET)  (DATASET=synthetic|ferplus|rafdb|affectnet|folder)
	@$(BUILD)
	$(BIN)/shard $(DATASET) $(FORCE_FLAG) --on-error $(ON_ERROR)

split: ## shards -> artifacts/splits/$(SPLIT).parquet from pipelines/splits/$(SPLIT).toml
	@$(BUILD)
	$(BIN)/shard split $(SPLIT) $(FORCE_FLAG)

embed-text: setup ## descriptions -> artifacts/text/$(ENCODER)/<set>/ (ENCODER=minilm|random|clip-text, TEXT_SET=facs|template)
	@$(BUILD)
	$(BIN)/embed-text --encoder $(ENCODER) $(if $(TEXT_SET),--set $(TEXT_SET),) $(FORCE_FLAG)

train: setup ## shards + split + text embeddings up to date, then train PRESET on SPLIT (SCALE=cpu|paper|demo|tiny, DEVICE=auto|cpu|cuda, NPROC=N ranks, SEED=N)
	@$(BUILD)
	$(BIN)/shard prepare $(SPLIT) --on-error $(ON_ERROR)
	@# train plan says which text prototypes the preset reads (and the run's name): no copy of its rules here.
	eval "$$($(BIN)/train plan $(RUN_ARGS))"; \
	if [ "$$text" = true ]; then $(BIN)/embed-text -q --encoder "$$text_encoder" --set "$$text_set"; fi
	$(BIN)/train run $(RUN_ARGS) --device $(DEVICE) $(if $(RESUME),--resume,) \
	  $(if $(NPROC),--nproc $(NPROC),) $(if $(SEED),--resume-if-any,)

compare: setup ## seed-paired grid: PRESETS × SEEDS on SPLIT (finished runs are kept), then audit's paired table with 95 % intervals
	@$(BUILD)
	@set -e; runs=(); for seed in $$(seq 0 $$(( $(SEEDS) - 1 ))); do for preset in $(PRESETS); do \
	  $(MAKE) --no-print-directory train SPLIT=$(SPLIT) PRESET=$$preset SCALE=$(SCALE) DEVICE=$(DEVICE) SEED=$$seed; \
	done; done; for preset in $(PRESETS); do for seed in $$(seq 0 $$(( $(SEEDS) - 1 ))); do \
	  eval "$$($(BIN)/train plan --split $(SPLIT) --preset $$preset --scale $(SCALE) --seed $$seed)"; \
	  runs+=("$$run_id"); done; done; \
	$(BIN)/audit --no-html "$${runs[@]}"

audit: ## pseudo-label quality report of the latest run (RUN=<name> for another) -> artifacts/reports/
	@$(BUILD)
	$(BIN)/audit $(RUN)

demo: ## THE main job: synthetic faces -> shards -> label-scarce split -> text -> supervised and SIT-FER x 3 seeds -> audit with the paired gain (12–17 min on 2 cores once built)
	@PROFILE=$(PROFILE) bash scripts/demo.sh

# Benchmarks time optimised code: their own (release) build.
bench: PROFILE = release
bench: setup ## every stage's benchmark against its reference, then a ratio table (BENCH_QUICK=1 for a short run)
	@$(BUILD) && $(CARGO) build --profile $(PROFILE) -q $(STAGES) --example fixture --example loader_throughput && $(CARGO) build --profile $(PROFILE) -q -p face --example align_throughput
	$(BIN)/shard synthetic -q && $(BIN)/shard split synthetic_10pct
	$(BIN)/embed-text -q --encoder minilm --set facs
	@mkdir -p artifacts/bench
	@# The Python references' augmentation: torchvision 0.28.0, the release paired with the setup's torch 2.13.
	@.venv-torch/bin/python -c 'import torchvision' 2> /dev/null || .venv-torch/bin/python -m pip install --quiet \
	  --disable-pip-version-check --no-deps torchvision==0.28.0
	@export BIN_DIR=$(abspath $(BIN)); set -o pipefail; { bash bench/shard_ferplus.sh; bash bench/embed_text.sh; bash bench/train_step.sh; bash bench/precision.sh; bash bench/precision_ferplus.sh; \
	  bash bench/loader.sh; bash bench/audit_1m.sh; bash bench/face_align.sh; } 2>&1 | tee artifacts/bench/last.log
	@echo; echo "== make bench: $$(nproc) cores, $$(date -u +%F)"; grep '^bench ' artifacts/bench/last.log
