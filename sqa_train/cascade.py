"""The cascade on any recording: pocketsphinx's transcript, a text BERT QA model, the answer mapped back to time.

    from sqa_train.cascade import CascadeSpokenQA
    cascade = CascadeSpokenQA("outputs/benchmark/sqa/cascade")     # run_sqa.py's fine-tuned cascade model
    cascade("passage.wav", question="Who ruled Normandy?", top_k=3)

    python -m sqa_train.cascade --model outputs/benchmark/sqa/cascade --audio passage.wav --question "Who ruled?"

It takes the same audio and arguments as SpeechBERT's `spoken-question-answering` pipeline and answers in the same
form, `{"answer", "start", "end", "score", "segment_start", "segment_end"}`, so both systems can be scored on
recordings outside the corpus. Windows, word scores and span rules are run_sqa.py's (`speechbert.text_qa`): a cascade
model scores here exactly as it scored in the benchmark.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from .models import check_model_reference


class CascadeSpokenQA:
    """ASR + text QA. `model` is a `BertForQuestionAnswering` folder (or the model itself, with `tokenizer`). The
    work is the cascade's Hub pipeline (`speechbert/pipeline_cascade.py`), which shipped cascade checkpoints carry:
    `pipeline(model=folder, trust_remote_code=True)` is the same."""

    def __init__(self, model, tokenizer=None, max_length=None, stride=None, max_answer_words=30, batch_size=16):
        """`max_length` defaults to 384 tokens or the model's positions if fewer, `stride` to a third of it (at most
        128), as run_qa.py cuts windows."""
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        from speechbert.pipeline_cascade import CascadeQuestionAnsweringPipeline

        for name, value, low in (("max_length", max_length, 8), ("stride", stride, 0),
                                 ("max_answer_words", max_answer_words, 1), ("batch_size", batch_size, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < low):
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if stride is not None and stride >= (max_length or 384) // 2:
            raise ValueError(f"stride ({stride}) must be below half of max_length ({max_length or 384})")
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            model = check_model_reference("model", model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForQuestionAnswering.from_pretrained(model)
        if tokenizer is None:
            raise ValueError("pass the tokenizer with a model object")
        if max_length is not None and max_length > model.config.max_position_embeddings:
            raise ValueError(f"max_length {max_length} is above the model's {model.config.max_position_embeddings} "
                             "position embeddings")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.pipeline = CascadeQuestionAnsweringPipeline(model=self.model, tokenizer=tokenizer)
        self.options = {k: v for k, v in (("max_length", max_length), ("stride", stride),
                                          ("max_answer_words", max_answer_words), ("window_batch_size", batch_size))
                        if v is not None}

    def __call__(self, audio, question, sampling_rate=None, word_segments=None, words=None, top_k=1):
        """Answer `question` (a string or a list) about `audio` (a path, bytes, a dict or an array with
        `sampling_rate`). `word_segments` + `words` skip recognition (the transcript is then given)."""
        return self.pipeline(audio, question=question, sampling_rate=sampling_rate, word_segments=word_segments,
                             words=words, top_k=top_k, **self.options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a BertForQuestionAnswering folder (run_sqa.py's cascade)")
    parser.add_argument("--audio", required=True, help="an audio file (WAV, FLAC, OGG, MP3)")
    parser.add_argument("--question", required=True, nargs="+", help="one or more questions")
    parser.add_argument("--top_k", type=int, default=1)
    args = parser.parse_args(argv)
    # The arguments, and the audio's decoding, are checked before the model is loaded.
    problems = []
    try:
        check_model_reference("--model", args.model)
    except ValueError as error:
        problems.append(str(error))
    if not Path(args.audio).is_file():
        problems.append(f"--audio {args.audio}: no such file")
    if args.top_k < 1:
        problems.append(f"--top_k must be >= 1, got {args.top_k}")
    audio = None
    if not problems:
        from speechbert.pipeline_speechbert import load_audio

        try:
            audio = load_audio(args.audio)
        except ValueError as error:
            problems.append(f"--audio {args.audio}: {error}")
    if problems:
        parser.error("; ".join(problems))
    cascade = CascadeSpokenQA(args.model)
    answers = cascade(audio, question=args.question if len(args.question) > 1 else args.question[0],
                      sampling_rate=16000, top_k=args.top_k)
    print(json.dumps(answers, indent=1))
    return answers


if __name__ == "__main__":
    main()
