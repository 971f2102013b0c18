"""Frame logits of a trained segmenter on the validation and test passages, for the analysis scripts beside this file
(decode_grid.py, encoder_lexicon.py, long_words.py). One call per passage (`run_segmenter.passage_logits`), cached in
/tmp/segmenter_logits_<folder name>_<hash>.pkl, the hash over the checkpoint's and the dataset's absolute paths and the
weights' modification time, so that the scripts share one pass and a retrained or another checkpoint of the same
folder name is not served stale logits."""
import hashlib
import os
import pickle
import sys

sys.path.insert(0, os.getcwd())
import run_segmenter as rs  # noqa: E402
from speechbert import SpeechBertForPreTraining, SpeechBertProcessor  # noqa: E402
from sqa_train.data import PassageFrames, load_corpus  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

SPLITS = ("validation", "test")


def load(model_dir, dataset):
    """(the segmenter checkpoint's config, {split: passage rows}, {split: {paragraph_id: (T, 3) logits}})."""
    splits = {s: rs.passage_rows(load_corpus(dataset)[s]) for s in SPLITS}
    model = SpeechBertForPreTraining.from_pretrained(model_dir)
    weights = os.path.join(model_dir, "model.safetensors")
    key = f"{os.path.abspath(model_dir)}|{os.path.abspath(dataset)}|{os.path.getmtime(weights)}"
    name = os.path.basename(os.path.abspath(model_dir))
    cache = f"/tmp/segmenter_logits_{name}_{hashlib.sha1(key.encode()).hexdigest()[:10]}.pkl"
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            return model.config, splits, pickle.load(f)
    processor = SpeechBertProcessor.for_config(model.config, AutoTokenizer.from_pretrained(model_dir))
    frames = PassageFrames(processor.feature_extractor, None)
    logits = {s: rs.passage_logits(model.bert.word_segmenter, frames, rows) for s, rows in splits.items()}
    with open(cache, "wb") as f:
        pickle.dump(logits, f)
    return model.config, splits, logits
