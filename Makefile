# SpeechBERT: `make demo` sets everything up and runs the main job on the embedded corpus; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := flite espeak-ng sox libsndfile1 pocketsphinx-testdata chromium chromium-driver

.PHONY: setup system-deps quickstart demo benchmark app test clean

setup: $(VENV)/.installed

# Speech tools from Debian (flite synthesis, espeak-ng pronunciations, a real recording for tests).
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

quickstart: setup
	$(PY) examples/quickstart.py

# The main job on the embedded default corpus: regenerate its audio, pre-train (both steps) SpeechBERT from
# all-MiniLM-L6-v2, train its word segmenter, fine-tune it at ASR segments and at its own segments, train the cascade
# and the text upper bound, evaluate every system by WER bucket.
DEMO := outputs/demo
DEMO_TRAIN := --report_to none --save_strategy no --logging_steps 10 --per_device_train_batch_size 8 \
	--per_device_eval_batch_size 16 --dataloader_num_workers 0 --seed 42
demo: setup
	$(PY) -m sqa_data.dataset --records data/embedded --output_dir $(DEMO)/dataset --with_audio --stats
	$(PY) run_pretraining.py --output_dir $(DEMO)/pretraining --dataset $(DEMO)/dataset --stage both \
		--stage1_num_train_epochs 4 --num_train_epochs 2 --learning_rate 1e-4 $(DEMO_TRAIN) \
		--config_overrides $(DEMO_AUDIO)
	$(PY) run_segmenter.py --model_name_or_path $(DEMO)/pretraining --dataset $(DEMO)/dataset \
		--output_dir $(DEMO)/segmenter --num_train_epochs 10 --learning_rate 1e-3 $(DEMO_TRAIN)
	$(PY) run_sqa.py --output_dir $(DEMO)/sqa --model_name_or_path $(DEMO)/segmenter --dataset $(DEMO)/dataset \
		--do_train --do_eval --num_train_epochs 3 --learning_rate 1e-4 $(DEMO_TRAIN) \
		--systems speechbert speechbert_segmenter cascade text
	@echo "results: $(DEMO)/sqa/results.md, plot: $(DEMO)/sqa/wer_buckets_test.png"
DEMO_AUDIO := audio_frame_stack=3

# The benchmark comparison on the built corpus (data/flite-squad): about 2 hours on 2 CPU cores (results/flite-squad/), less on a GPU.
# Every step resumes: rerun `make benchmark` after an interruption. A finished pre-training step is reused only when its
# settings match (run_pretraining.py refuses a step folder made with others: delete it to rerun that step).
BENCH := outputs/benchmark
BENCH_TRAIN := --report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50 \
	--per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42 \
	--resume_from_checkpoint true
# MiniLM's input embeddings are small (mean |e| = 0.043), so at weight 1 the step-1 L1 pull is about 6% of the loss and
# the codes stayed as far from the embeddings as a constant would be: the benchmark weights it 10x.
BENCH_AUDIO := audio_frame_stack=3,alignment_loss_weight=10
benchmark: setup
	test -f $(BENCH)/dataset/dataset_dict.json || \
		$(PY) -m sqa_data.dataset --records data/flite-squad --output_dir $(BENCH)/dataset --with_audio --stats --num_proc 2
	$(PY) run_pretraining.py --output_dir $(BENCH)/pretraining --dataset $(BENCH)/dataset --stage both \
		--stage1_num_train_epochs 10 --num_train_epochs 1 --learning_rate 1e-4 $(BENCH_TRAIN) \
		--config_overrides $(BENCH_AUDIO) --codes_eval_splits validation test
	$(PY) run_sqa.py --output_dir $(BENCH)/sqa --model_name_or_path $(BENCH)/pretraining --dataset $(BENCH)/dataset \
		--do_train --do_eval --num_train_epochs 2 --learning_rate 1e-4 $(BENCH_TRAIN) \
		--spoken_squad_text_json ../shared/data/spoken-squad-test/spoken_test-v1.1_42.json

# The demo page on http://127.0.0.1:7860 with the model `make demo` trained (or SPEECHBERT_MODEL=...).
app: setup
	$(PY) app.py

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
