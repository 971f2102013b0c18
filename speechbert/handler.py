"""Inference Endpoints handler: JSON with base64 audio and a question in, the answer out.

Request:  {"inputs": {"audio": "<base64 of a WAV/FLAC/OGG/MP3 file>", "question": "..." or ["...", ...]},
           "parameters": {"top_k": 1, "word_segments": [[start, end], ...], "words": [...]}}
Response: the pipeline's answer, {"answer", "start", "end", "score", "segment_start", "segment_end"} (a list of them
for a list of questions or top_k > 1).
"""

import base64
import binascii
import json
from pathlib import Path

from transformers import pipeline

TASK = "spoken-question-answering"


class EndpointHandler:
    def __init__(self, path=""):
        # Inference Endpoints import this file on its own, not as part of a package: no relative imports here.
        config_file = Path(path or ".") / "config.json"
        config = json.loads(config_file.read_text()) if config_file.exists() else {}
        if TASK not in (config.get("custom_pipelines") or {}):
            raise ValueError(
                f"the checkpoint at {path!r} has no {TASK!r} entry in config.json's custom_pipelines: save it with "
                "a SpeechBERT model class (SpeechBertForQuestionAnswering.save_pretrained) so its pipeline comes along"
            )
        self.pipeline = pipeline(model=path, trust_remote_code=True)

    def __call__(self, data: dict):
        inputs = data.get("inputs", data) if isinstance(data, dict) else None
        if not isinstance(inputs, dict):
            raise ValueError('expected {"inputs": {"audio": <base64>, "question": <text>}}')
        missing = [key for key in ("audio", "question") if not inputs.get(key)]
        if missing:
            raise ValueError(f"missing or empty inputs {missing}: expected base64 'audio' and a 'question'")
        try:
            audio = base64.b64decode(inputs["audio"], validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise ValueError(f"'audio' is not valid base64: {error}") from error
        parameters = dict(data.get("parameters") or {})
        return self.pipeline(audio, question=inputs["question"], **parameters)
