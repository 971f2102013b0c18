"""The cascade on any recording: pocketsphinx's transcript, a text BERT QA model, the answer mapped back to time.

    from sqa_train.cascade import CascadeSpokenQA
    cascade = CascadeSpokenQA("outputs/benchmark/sqa/cascade")     # run_sqa.py's fine-tuned cascade model
    cascade("passage.wav", question="Who ruled Normandy?", top_k=3)

    python -m sqa_train.cascade --model outputs/benchmark/sqa/cascade --audio passage.wav --question "Who ruled?"

It takes the same audio and arguments as SpeechBERT's `spoken-question-answering` pipeline and answers in the same
form, `{"answer", "start", "end", "score", "segment_start", "segment_end"}`, so both systems can be scored on
recordings outside the corpus. Windows, word scores and span rules are run_sqa.py's (`text_qa_items`,
`text_word_scores`): a cascade model scores here exactly as it scored in the benchmark.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from speechbert.pipeline_speechbert import SAMPLING_RATE, check_sampling_rate_type, load_audio, recognize_words
from speechbert.processing_speechbert import best_spans, check_words

from .data import TextQACollator, text_qa_items
from .models import check_model_reference
from .postprocess import text_word_scores


class CascadeSpokenQA:
    """ASR + text QA. `model` is a `BertForQuestionAnswering` folder (or the model itself, with `tokenizer`)."""

    def __init__(self, model, tokenizer=None, max_length=384, stride=128, max_answer_words=30, batch_size=16):
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        for name, value, low in (("max_length", max_length, 8), ("stride", stride, 0),
                                 ("max_answer_words", max_answer_words, 1), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if stride >= max_length // 2:
            raise ValueError(f"stride ({stride}) must be below half of max_length ({max_length})")
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            model = check_model_reference("model", model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForQuestionAnswering.from_pretrained(model)
        if tokenizer is None:
            raise ValueError("pass the tokenizer with a model object")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.stride = max_length, stride
        self.max_answer_words, self.batch_size = max_answer_words, batch_size

    def __call__(self, audio, question, sampling_rate=None, word_segments=None, words=None, top_k=1):
        """Answer `question` (a string or a list) about `audio` (a path, bytes, a dict or an array with
        `sampling_rate`). `word_segments` + `words` skip recognition (the transcript is then given)."""
        check_sampling_rate_type(sampling_rate)
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        single = isinstance(question, str)
        questions = [question] if single else question
        if not isinstance(questions, (list, tuple)) or not questions:
            raise ValueError(f"question must be a string or a non-empty list of strings, got {question!r}")
        for i, q in enumerate(questions):
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"question {i} must be a non-empty string, got {q!r}")
        if (word_segments is None) != (words is None):
            raise ValueError("the cascade reads words: pass word_segments and words together, or neither (ASR)")
        if words is not None:
            check_words(words)
            if len(words) != len(word_segments):
                raise ValueError(f"got {len(word_segments)} word segments but {len(words)} words")
        samples = load_audio(audio, sampling_rate)
        if words is None:
            words, word_segments = recognize_words(samples)
        times = np.asarray(word_segments, np.float64).reshape(-1, 2)
        duration = len(samples) / SAMPLING_RATE
        rows = [{"question": q, "asr_words": list(words)} for q in questions]
        items, _ = text_qa_items(rows, self.tokenizer, "asr", self.max_length, self.stride)
        start, end = self._logits(items)
        scores = text_word_scores(items, start, end, {e: len(words) for e in range(len(rows))})
        results = []
        for example in range(len(rows)):
            found = best_spans(*scores[example], self.max_answer_words, top_k=top_k)
            answers = [{"answer": " ".join(words[i : j + 1]), "start": round(float(times[i, 0]), 3),
                        "end": round(float(min(times[j, 1], duration)), 3), "score": float(np.exp(score)),
                        "segment_start": i, "segment_end": j} for i, j, score in found]
            results.append(answers if top_k > 1 else answers[0])
        return results[0] if single else results

    def _logits(self, items):
        collator = TextQACollator(self.tokenizer.pad_token_id)
        width = max(len(item["input_ids"]) for item in items)
        start = np.full((len(items), width), -np.inf, np.float32)
        end = np.full((len(items), width), -np.inf, np.float32)
        with torch.no_grad():
            for a in range(0, len(items), self.batch_size):
                batch = collator(items[a : a + self.batch_size])
                out = self.model(**{k: v.to(self.model.device) for k, v in batch.items()})
                n = batch["input_ids"].shape[1]
                start[a : a + len(batch["input_ids"]), :n] = out.start_logits.float().cpu().numpy()
                end[a : a + len(batch["input_ids"]), :n] = out.end_logits.float().cpu().numpy()
        return start, end


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a BertForQuestionAnswering folder (run_sqa.py's cascade)")
    parser.add_argument("--audio", required=True, help="an audio file (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--question", required=True, nargs="+", help="one or more questions")
    parser.add_argument("--top_k", type=int, default=1)
    args = parser.parse_args(argv)
    # The arguments are checked before the model is loaded or the audio decoded.
    problems = []
    try:
        check_model_reference("--model", args.model)
    except ValueError as error:
        problems.append(str(error))
    if not Path(args.audio).is_file():
        problems.append(f"--audio {args.audio}: no such file")
    if args.top_k < 1:
        problems.append(f"--top_k must be >= 1, got {args.top_k}")
    if problems:
        parser.error("; ".join(problems))
    cascade = CascadeSpokenQA(args.model)
    answers = cascade(args.audio, question=args.question if len(args.question) > 1 else args.question[0],
                      top_k=args.top_k)
    print(json.dumps(answers, indent=1))
    return answers


if __name__ == "__main__":
    main()
