"""How well does the pipeline's `answer_from_audio` name the answer without any recognition? (issue 13, 2026-12-06)

Runs the public pipeline, as a user would, on every passage of a split with the checkpoint's own word segmenter
(`segmenter="model"`, no ASR) and `answer_from_audio=True`, all of a passage's questions in one call, and scores per
question, against the corpus's spoken-form answers with the metric module's own functions:
- `heard`: the answer's words read back from their audio codes (what the pipeline returns without ASR);
- `asr_words`: pocketsphinx's words whose middle lies inside the same predicted time span (how `run_sqa.py` gives the
  segmenter's system a text for scoring: a recogniser the no-ASR path does not have);
- AOS of the predicted time span (the same for both).
The checkpoint is loaded with the package's classes (not the code copied into it). Run from the repository root:

    .venv/bin/python results/flite-squad/segmenter/answer_from_audio.py --model outputs/benchmark/no_asr/model \
        --dataset outputs/benchmark/dataset --split test \
        --output results/flite-squad/segmenter/answer_from_audio/test.json
"""

import argparse
import importlib.util
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from sqa_data.argtypes import positive_int


def metric_functions():
    spec = importlib.util.spec_from_file_location("spoken_squad_qa",
                                                  ROOT / "metrics" / "spoken_squad_qa" / "spoken_squad_qa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def words_in_span(row, start: float, end: float) -> str:
    """The ASR words whose middle lies inside [start, end] s."""
    return " ".join(w for w, s, e in zip(row["asr_words"], row["asr_starts"], row["asr_ends"])
                    if start <= (s + e) / 2 <= end)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a SpeechBERT checkpoint with a word segmenter")
    parser.add_argument("--dataset", required=True, help="a save_to_disk DatasetDict folder (make benchmark's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_passages", type=positive_int, default=None)
    parser.add_argument("--audio_cache_dir", default="outputs/cache/audio")
    parser.add_argument("--output", type=Path, default=None, help="JSON of the figures and every question's answers")
    args = parser.parse_args(argv)

    import torch
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from speechbert import SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering, SpeechBertProcessor
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register
    from sqa_data.dataset import passage_audio
    from sqa_train.data import spoken_answers
    from sqa_train.models import check_model_reference

    check_model_reference("--model", args.model)
    metric = metric_functions()
    rows = load_from_disk(args.dataset)[args.split]
    passages = defaultdict(list)
    for row in rows:
        passages[row["paragraph_id"]].append(row)
    chosen = list(passages)[: args.max_passages]
    register()
    model = SpeechBertForQuestionAnswering.from_pretrained(args.model).eval()
    if not model.config.word_segmenter:
        raise SystemExit(f"--model {args.model} has no word segmenter: answer_from_audio is measured at its segments")
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)  # as run_sqa.py loads it
    processor = SpeechBertProcessor(SpeechBertFeatureExtractor.from_pretrained(args.model), tokenizer)
    qa = SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")
    torch.set_num_threads(1)
    scored, began = [], time.perf_counter()
    for n, paragraph_id in enumerate(chosen, 1):
        group = passages[paragraph_id]
        audio = passage_audio(group[0], args.audio_cache_dir)
        found = qa(audio, question=[r["question"] for r in group], sampling_rate=16000, segmenter="model",
                   answer_from_audio=True)
        for row, answer in zip(group, found):
            references = spoken_answers(row)
            asr = words_in_span(row, answer["start"], answer["end"])
            spans = [(s, e) for s, e in zip(row["answers"]["start_time"], row["answers"]["end_time"]) if s >= 0]
            scored.append({
                "id": row["id"], "voice": row.get("voice"), "references": references,
                "heard": answer["answer_from_audio"], "asr_words": asr, "start": answer["start"], "end": answer["end"],
                "heard_f1": max(metric.token_f1(answer["answer_from_audio"], r) for r in references),
                "heard_em": max(metric.exact_match(answer["answer_from_audio"], r) for r in references),
                "asr_f1": max(metric.token_f1(asr, r) for r in references),
                "asr_em": max(metric.exact_match(asr, r) for r in references),
                "aos": max((metric.aos(answer["start"], answer["end"], s, e) for s, e in spans), default=0.0),
            })
        if n % 25 == 0:
            print(f"{n}/{len(chosen)} passages, {time.perf_counter() - began:.0f} s", file=sys.stderr)
    figures = {key: round(100 * float(np.mean([q[key] for q in scored])), 2)
               for key in ("heard_em", "heard_f1", "asr_em", "asr_f1", "aos")}
    summary = {"model": args.model, "split": args.split, "passages": len(chosen), "questions": len(scored),
               "seconds": round(time.perf_counter() - began, 1), **figures}
    print(json.dumps(summary, indent=2))
    print(f"\n| {args.split} ({len(scored)} questions) | EM | F1 |\n|---|---|---|\n"
          f"| answer read from the audio codes (no ASR) | {figures['heard_em']:.1f} | {figures['heard_f1']:.1f} |\n"
          f"| ASR words in the same time span (scoring only) | {figures['asr_em']:.1f} | {figures['asr_f1']:.1f} |\n"
          f"\nAOS of the span: {figures['aos']:.1f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"summary": summary, "questions": scored}, indent=1))


if __name__ == "__main__":
    main()
