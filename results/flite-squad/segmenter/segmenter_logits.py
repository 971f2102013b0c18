"""Frame logits of a trained segmenter on the validation and test passages, for the analysis scripts beside this file
(decode_grid.py, encoder_lexicon.py, long_words.py). One call per passage (`run_segmenter.passage_logits`), cached in
/tmp/segmenter_logits_<folder name>_<hash>.pkl, the hash over the checkpoint's and the dataset's absolute paths and the
weights' modification time, so that the scripts share one pass and a retrained or another checkpoint of the same
folder name is not served stale logits."""
import hashlib
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.getcwd())
import run_segmenter as rs  # noqa: E402
from speechbert import SpeechBertForPreTraining, SpeechBertProcessor  # noqa: E402
from speechbert.segmentation_speechbert import boundaries  # noqa: E402
from sqa_train.data import PassageFrames, load_corpus, segment_times  # noqa: E402
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
    # The checkpoint's tokenizer is BERT's; its auto_map names only the processor, whose remote code is not needed.
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    processor = SpeechBertProcessor.for_config(model.config, tokenizer)
    frames = PassageFrames(processor.feature_extractor, None)
    logits = {s: rs.passage_logits(model.bert.word_segmenter, frames, rows) for s, rows in splits.items()}
    with open(cache, "wb") as f:
        pickle.dump(logits, f)
    return model.config, splits, logits


def start_counts(rows, predict):
    """How the reference word starts of `rows` are found by `predict(row) -> (start, end) segments`, by kind: after a
    pause (over 30 ms of silence before the word), joined to the word before with no pause, or a passage's first word.
    {kind: [starts, with a predicted boundary within 20 ms, with none within 100 ms]}."""
    counts = {"pause": [0, 0, 0], "joined": [0, 0, 0], "first": [0, 0, 0]}
    for row in rows:
        reference = np.asarray(segment_times(row, "ref"), np.float64)
        predicted = boundaries(predict(row))
        for i, (start, _) in enumerate(reference):
            kind = "first" if i == 0 else ("pause" if start - reference[i - 1][1] > 0.03 else "joined")
            distance = np.min(np.abs(predicted - start)) if len(predicted) else np.inf
            counts[kind][0] += 1
            counts[kind][1] += distance <= 0.02 + 1e-9
            counts[kind][2] += distance > 0.1
    return counts


def grid_search(score, settings, label, top):
    """Every setting scored on validation (`score("validation", *setting)`, a `run_segmenter.score_rows` "all" dict),
    as (F1 at 20 ms, setting, F1 at 50 ms, words per word), best F1 at 20 ms first (ties in the given order); the
    count and the best `top` are printed."""
    grid = []
    for setting in settings:
        r = score("validation", *setting)
        grid.append((r["f1_20ms"], setting, r["f1_50ms"], r["word_ratio"]))
    grid.sort(key=lambda g: -g[0])
    print(f"{len(grid)} settings ({label}) on validation, best first:")
    for f1, setting, f1_50, ratio in grid[:top]:
        print(f"  {setting}: F1 20 ms {f1:.2f}, 50 ms {f1_50:.2f}, words per word {ratio:.3f}")
    return grid


def print_test(score, settings):
    """Test scored once per named setting ({name: setting}), printed as boundary P / R / F1."""
    for name, setting in settings.items():
        r = score("test", *setting)
        print(f"test, {name} {setting}: P / R / F1 at 20 ms {r['precision_20ms']:.1f} / {r['recall_20ms']:.1f} / "
              f"{r['f1_20ms']:.1f}, F1 at 50 ms {r['f1_50ms']:.1f}, words per word {r['word_ratio']:.3f}")
