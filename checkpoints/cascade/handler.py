"""Inference Endpoints handler: JSON with base64 audio and a question in, the answer out.

Request:  {"inputs": {"audio": "<base64 of a WAV/FLAC/OGG/MP3 file>", "question": "..." or ["...", ...]},
           "parameters": {"top_k": 1, "word_segments": [[start, end], ...], "words": [...], "segmenter": "model",
                          "answer_from_audio": true}}
Response: the pipeline's answer, {"answer", "start", "end", "score", "segment_start", "segment_end"} (a list of them
for a list of questions or top_k > 1). Without word_segments a checkpoint with a word segmenter finds the words itself
(no recognition: "answer" is null unless words are given; "answer_from_audio": true adds the answer's words read back
from their audio codes, a guess); others need pocketsphinx. "segmenter": "asr" or "model" chooses.

Limits, checked in this order before any audio is decoded or recognised (constructor arguments, or the environment
variables in brackets; 0 turns a limit off):
- max_payload_bytes (SPEECHBERT_MAX_PAYLOAD_BYTES, default 16 MiB): length of the base64 audio string;
- max_questions (SPEECHBERT_MAX_QUESTIONS, default 32): questions per request;
- max_question_chars (SPEECHBERT_MAX_QUESTION_CHARS, default 1000): characters of one question;
- max_top_k (SPEECHBERT_MAX_TOP_K, default 20) and max_answer_segments (SPEECHBERT_MAX_ANSWER_SEGMENTS, default 100):
  the largest `top_k` and `max_answer_segments` parameters;
- max_audio_seconds (SPEECHBERT_MAX_AUDIO_SECONDS, default 600): audio duration, read from the file's header.
Base64 may be wrapped (line breaks and spaces are dropped); parameters named audio, question or inputs are refused.
"""

import base64
import binascii
import io
import json
import os
from pathlib import Path

from transformers import pipeline

TASK = "spoken-question-answering"
DEFAULT_LIMITS = {"max_payload_bytes": 16 * 2**20, "max_questions": 32, "max_audio_seconds": 600,
                  "max_question_chars": 1000, "max_top_k": 20, "max_answer_segments": 100}
# Pipeline parameters capped by a limit of the same name (a top_k of 1e9 answered 2.5 million spans, 300 MB).
CAPPED_PARAMETERS = {"top_k": "max_top_k", "max_answer_segments": "max_answer_segments"}


def _limit(name, value):
    if value is None:
        raw = os.environ.get(f"SPEECHBERT_{name.upper()}")
        if raw is None:
            return DEFAULT_LIMITS[name]
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"SPEECHBERT_{name.upper()}={raw!r} is not a number") from None
    # NaN compares false with everything: as a limit it would turn the limit off without a word.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0 (0: no limit), got {value!r}")
    return value or None


class EndpointHandler:
    def __init__(self, path="", max_audio_seconds=None, max_questions=None, max_payload_bytes=None,
                 max_question_chars=None, max_top_k=None, max_answer_segments=None):
        # Inference Endpoints import this file on its own, not as part of a package: no relative imports here.
        folder = Path(path or ".")
        if not folder.is_dir():
            raise ValueError(f"the checkpoint folder {str(folder)!r} does not exist")
        config_file = folder / "config.json"
        if not config_file.exists():
            raise ValueError(f"{str(folder)!r} holds no config.json: is it a saved SpeechBERT checkpoint?")
        config = json.loads(config_file.read_text())
        if TASK not in (config.get("custom_pipelines") or {}):
            raise ValueError(
                f"the checkpoint at {path!r} has no {TASK!r} entry in config.json's custom_pipelines: save it with "
                "a SpeechBERT model class (SpeechBertForQuestionAnswering.save_pretrained) so its pipeline comes along"
            )
        self.max_audio_seconds = _limit("max_audio_seconds", max_audio_seconds)
        self.max_questions = _limit("max_questions", max_questions)
        self.max_payload_bytes = _limit("max_payload_bytes", max_payload_bytes)
        self.max_question_chars = _limit("max_question_chars", max_question_chars)
        self.max_top_k = _limit("max_top_k", max_top_k)
        self.max_answer_segments = _limit("max_answer_segments", max_answer_segments)
        self.pipeline = pipeline(model=path, trust_remote_code=True)

    def __call__(self, data: dict):
        inputs = data.get("inputs", data) if isinstance(data, dict) else None
        if not isinstance(inputs, dict):
            raise ValueError('expected {"inputs": {"audio": <base64>, "question": <text>}}')
        missing = [key for key in ("audio", "question") if not inputs.get(key)]
        if missing:
            raise ValueError(f"missing or empty inputs {missing}: expected base64 'audio' and a 'question'")
        question = inputs["question"]
        questions = [question] if isinstance(question, str) else question
        if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
            raise ValueError(f"'question' must be a string or a list of strings, got {question!r}")
        blank = [i for i, q in enumerate(questions) if not q.strip()]
        if blank:
            raise ValueError(f"question {blank[0]} is empty: expected a non-empty string, got {questions[blank[0]]!r}")
        if self.max_questions and len(questions) > self.max_questions:
            raise ValueError(f"{len(questions)} questions in one request; the limit is {self.max_questions:g} "
                             "(max_questions / SPEECHBERT_MAX_QUESTIONS)")
        long = [i for i, q in enumerate(questions) if self.max_question_chars and len(q) > self.max_question_chars]
        if long:
            raise ValueError(f"question {long[0]} is {len(questions[long[0]])} characters; the limit is "
                             f"{self.max_question_chars:g} (max_question_chars / SPEECHBERT_MAX_QUESTION_CHARS)")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"'parameters' must be an object, got {type(parameters).__name__}")
        clash = sorted({"audio", "question", "inputs"} & set(parameters))
        if clash:
            raise ValueError(f"parameters {clash} belong in 'inputs', not 'parameters'")
        for name, limit_name in CAPPED_PARAMETERS.items():
            value, limit = parameters.get(name), getattr(self, limit_name)
            if limit and isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
                raise ValueError(f"parameter {name}={value:g}; the limit is {limit:g} ({limit_name} / "
                                 f"SPEECHBERT_{limit_name.upper()})")
        encoded = inputs["audio"]
        if not isinstance(encoded, str):
            raise ValueError(f"'audio' must be a base64 string, got {type(encoded).__name__}")
        if self.max_payload_bytes and len(encoded) > self.max_payload_bytes:
            raise ValueError(f"'audio' is {len(encoded)} bytes of base64; the limit is {self.max_payload_bytes:g} "
                             "(max_payload_bytes / SPEECHBERT_MAX_PAYLOAD_BYTES)")
        try:  # line breaks and spaces, as GNU base64 and MIME wrap it, are not part of the data
            audio = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise ValueError(f"'audio' is not valid base64: {error}") from error
        if self.max_audio_seconds:
            import soundfile as sf

            try:
                info = sf.info(io.BytesIO(audio))
            except Exception as error:  # noqa: BLE001 - soundfile raises several types for undecodable input
                raise ValueError(f"could not decode audio from the request: {error}. Supported: WAV, FLAC, OGG, MP3 "
                                 "(whatever libsndfile reads)") from error
            if info.duration > self.max_audio_seconds:
                raise ValueError(f"the audio is {info.duration:.1f} s long; the limit is {self.max_audio_seconds:g} s "
                                 "(max_audio_seconds / SPEECHBERT_MAX_AUDIO_SECONDS)")
        return self.pipeline(audio, question=question, **parameters)
