"""The cascade's `spoken-question-answering` pipeline: pocketsphinx's transcript of the audio, a text BERT QA model
over its words, the answer span mapped back to the words' times.

    from transformers import pipeline
    qa = pipeline(model="checkpoints/cascade", trust_remote_code=True)   # a BertForQuestionAnswering folder
    qa("passage.wav", question="Who ruled Normandy?", top_k=3)

It takes SpeechBERT's pipeline's audio and arguments and answers in the same form, `{"answer", "start", "end",
"score", "segment_start", "segment_end"}`, so both systems can be compared on any recording. `word_segments` with
`words` skip recognition (a transcript given with its times). Windows, word scores and span rules are `run_sqa.py`'s
(`text_qa.py`): a cascade model answers here as it was scored in the benchmark. A text QA folder gets this pipeline
with `save_cascade_pipeline` (run_sqa.py does it for the cascade it trains).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Pipeline

from .feature_extraction_speechbert import check_word_segments
from .pipeline_speechbert import (SAMPLING_RATE, TASK, check_integer_options, check_questions,
                                  check_sampling_rate_type, load_audio, recognize_words)
from .processing_speechbert import best_spans, check_words
from .text_qa import pad_tokens, text_windows, text_word_scores

CASCADE_PIPELINE = {"impl": "pipeline_cascade.CascadeQuestionAnsweringPipeline",
                    "pt": ["AutoModelForQuestionAnswering"], "tf": [], "type": "multimodal"}


class CascadeQuestionAnsweringPipeline(Pipeline):
    _load_processor = False
    _load_tokenizer = True
    _load_feature_extractor = False
    _load_image_processor = False

    def __call__(self, audio, question=None, **kwargs):
        """Answer `question` (a string or a list) about `audio` (a path, bytes, a dict or an array with
        `sampling_rate`): a dict per question (a list of `top_k` dicts when `top_k > 1`)."""
        if question is None:
            raise ValueError("question is required: pipe(audio, question='...')")
        return super().__call__({"audio": audio, "question": question}, **kwargs)

    def _sanitize_parameters(self, sampling_rate=None, word_segments=None, words=None, top_k=None,
                             max_answer_words=None, max_length=None, stride=None, window_batch_size=None, **kwargs):
        # Every argument is checked here, before any audio is decoded or recognised.
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        check_sampling_rate_type(sampling_rate)
        limit = self.model.config.max_position_embeddings
        check_integer_options((("top_k", top_k, 1, None), ("max_answer_words", max_answer_words, 1, None),
                               ("max_length", max_length, 8, limit), ("stride", stride, 0, None),
                               ("window_batch_size", window_batch_size, 1, None)))
        if stride is not None and stride >= (max_length or min(384, limit)) // 2:
            raise ValueError(f"stride ({stride}) must be below half of max_length ({max_length or min(384, limit)})")
        if max_length is not None and stride is None and min(128, max_length // 3) + 4 >= max_length:
            raise ValueError(f"max_length {max_length} leaves no room for a question and the passage's words")
        if (word_segments is None) != (words is None):
            raise ValueError("the cascade reads words: pass word_segments and words together, or neither (ASR)")
        if words is not None:
            check_words(words)
            words = [str(word) for word in words]
            if len(words) != len(word_segments):
                raise ValueError(f"got {len(word_segments)} word segments but {len(words)} words")
            check_word_segments(word_segments, float("inf"))  # shape, numbers, order; the audio's end once decoded
        preprocess = {"sampling_rate": sampling_rate, "word_segments": word_segments, "words": words,
                      "max_length": max_length, "stride": stride}
        forward = {"window_batch_size": window_batch_size} if window_batch_size is not None else {}
        postprocess = {k: v for k, v in (("top_k", top_k), ("max_answer_words", max_answer_words)) if v is not None}
        return preprocess, forward, postprocess

    def preprocess(self, inputs, sampling_rate=None, word_segments=None, words=None, max_length=None, stride=None):
        max_length = max_length or min(384, self.model.config.max_position_embeddings)
        stride = stride if stride is not None else min(128, max_length // 3)
        single = isinstance(inputs["question"], str)
        questions, pieces = check_questions(inputs["question"], self.tokenizer)
        longest = int(np.argmax(pieces))
        if pieces[longest] + 3 + stride >= max_length:  # else the tokenizer panics (a Rust PanicException)
            raise ValueError(f"question {longest} has {pieces[longest]} word pieces: with [CLS] and two [SEP] and "
                             f"stride={stride}, a window of max_length={max_length} has no room for the passage "
                             f"(at most {max_length - stride - 4} question pieces)")
        audio = load_audio(inputs["audio"], sampling_rate)
        duration = len(audio) / SAMPLING_RATE
        if words is None:
            words, word_segments = recognize_words(audio)
        times = check_word_segments(word_segments, duration)
        items = text_windows(self.tokenizer, questions, [list(words)] * len(questions), max_length, stride)
        return {"items": items, "words": list(words), "times": times, "duration": duration, "single": single,
                "num_questions": len(questions)}

    def _forward(self, inputs, window_batch_size=16):
        items, starts, ends = inputs["items"], [], []
        width = max(len(item["input_ids"]) for item in items)
        for a in range(0, len(items), window_batch_size):
            batch = pad_tokens(items[a : a + window_batch_size], self.tokenizer.pad_token_id)
            outputs = self.model(**{k: v.to(self.model.device) for k, v in batch.items()})
            pad = width - batch["input_ids"].shape[1]
            starts.append(torch.nn.functional.pad(outputs.start_logits.detach().float().cpu(), (0, pad),
                                                  value=-float("inf")))
            ends.append(torch.nn.functional.pad(outputs.end_logits.detach().float().cpu(), (0, pad),
                                                value=-float("inf")))
        return {**inputs, "start_logits": torch.cat(starts), "end_logits": torch.cat(ends)}

    def postprocess(self, outputs, top_k=1, max_answer_words=30):
        words, times, duration = outputs["words"], outputs["times"], outputs["duration"]
        scores = text_word_scores(outputs["items"], outputs["start_logits"].numpy(), outputs["end_logits"].numpy(),
                                  {e: len(words) for e in range(outputs["num_questions"])})
        results = []
        for example in range(outputs["num_questions"]):
            found = best_spans(*scores[example], max_answer_words, top_k=top_k)
            answers = [{"answer": " ".join(words[i : j + 1]), "start": round(float(times[i, 0]), 3),
                        "end": round(float(min(times[j, 1], duration)), 3), "score": float(np.exp(score)),
                        "segment_start": i, "segment_end": j} for i, j, score in found]
            results.append(answers if top_k > 1 else answers[0])
        return results[0] if outputs["single"] else results


def save_cascade_pipeline(folder) -> None:
    """Make a saved text QA folder (`BertForQuestionAnswering` and its tokenizer) a spoken QA checkpoint:
    `pipeline(model=folder, trust_remote_code=True)` then gives this pipeline. The Hub code goes beside the weights
    (this file and the modules it imports) and `config.json` names the pipeline under `custom_pipelines`."""
    folder = Path(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        if source.name != "__init__.py":
            shutil.copy2(source, folder / source.name)
    if (config.get("custom_pipelines") or {}).get(TASK) != CASCADE_PIPELINE:
        config["custom_pipelines"] = {**(config.get("custom_pipelines") or {}), TASK: CASCADE_PIPELINE}
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


__all__ = ["CascadeQuestionAnsweringPipeline", "save_cascade_pipeline"]
