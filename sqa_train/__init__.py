"""Training, post-processing and evaluation for SpeechBERT and its text baselines (used by run_pretraining.py and
run_sqa.py)."""
