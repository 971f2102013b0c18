"""`spoken-question-answering` pipeline: audio + question(s) -> answer words, start and end seconds, score.

    from transformers import pipeline
    qa = pipeline(model="path/or/repo", trust_remote_code=True)    # the task comes from the checkpoint's config
    qa("passage.wav", question="Who ruled Normandy?", top_k=3)

Audio is a path, raw bytes, a `{"array", "sampling_rate"}` dict or an array with `sampling_rate=`; it is down-mixed
and resampled to 16 kHz. Without `word_segments` the passage is recognised with pocketsphinx (an optional dependency:
`pip install pocketsphinx`) for its word times. Several questions about one passage share its features.
"""

import io

import numpy as np
import torch
from transformers import Pipeline

SAMPLING_RATE = 16000
TASK = "spoken-question-answering"
_NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[BREATH]", "[COUGH]", "[UH]", "[UM]", "[SMACK]"}


def load_audio(audio, sampling_rate=None) -> np.ndarray:
    """Mono float32 16 kHz samples from a path, bytes, a {"array", "sampling_rate"} dict or an array + rate."""
    import soundfile as sf

    if isinstance(audio, dict):
        array = audio.get("array", audio.get("raw"))
        if array is None or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' (or 'raw') and 'sampling_rate'")
        audio, sampling_rate = array, audio["sampling_rate"]
    if isinstance(audio, (str, bytes, bytearray, io.IOBase)) or hasattr(audio, "__fspath__"):
        source = io.BytesIO(audio) if isinstance(audio, (bytes, bytearray)) else audio
        if isinstance(audio, (bytes, bytearray)) and not audio:
            raise ValueError("audio is empty (0 bytes)")
        try:
            array, sampling_rate = sf.read(source, dtype="float32", always_2d=True)
        except Exception as error:  # noqa: BLE001 - soundfile raises several types for undecodable input
            path_like = isinstance(audio, str) or hasattr(audio, "__fspath__")
            name = str(audio) if path_like else f"{type(audio).__name__} input"
            raise ValueError(f"could not decode audio from {name}: {error}. Supported: WAV, FLAC, OGG, MP3 "
                             "(whatever libsndfile reads)") from error
        audio = array.mean(axis=1)
    elif sampling_rate is None:
        raise ValueError("an audio array needs its sampling_rate (e.g. sampling_rate=16000)")
    audio = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    if audio.ndim == 2:  # (channels, samples) from a caller: down-mix explicitly
        audio = audio.mean(axis=0)
    if audio.size == 0:
        raise ValueError("audio is empty (0 samples)")
    if sampling_rate != SAMPLING_RATE:
        import torchaudio

        audio = torchaudio.functional.resample(torch.from_numpy(audio), int(sampling_rate), SAMPLING_RATE).numpy()
    return audio


def recognize_words(audio: np.ndarray) -> tuple[list[str], list[tuple[float, float]]]:
    """pocketsphinx en-us recognition: the words and their (start, end) seconds."""
    try:
        from pocketsphinx import Decoder
    except ImportError as error:
        raise ImportError(
            "the spoken-question-answering pipeline needs word times: pass word_segments=[(start, end), ...] or "
            "install pocketsphinx (`pip install pocketsphinx`) to recognise them"
        ) from error
    found = decode_words(Decoder(samprate=SAMPLING_RATE, loglevel="FATAL"), audio)
    if not found:
        raise ValueError("no words were recognised in the audio: is it silent or not speech?")
    return [w for w, _, _ in found], [(start, end) for _, start, end in found]


def decode_words(decoder, audio: np.ndarray) -> list[tuple[str, float, float]]:
    """Run a pocketsphinx decoder (recognition or alignment) over 16 kHz audio: [(word, start_s, end_s), ...]
    without silences and fillers, times clipped to the audio."""
    # pocketsphinx drops the last word unless the utterance ends in silence.
    padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(SAMPLING_RATE, np.float32)])
    decoder.start_utt()
    decoder.process_raw((np.clip(padded, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return []
    rate, duration = decoder.config["frate"], len(audio) / SAMPLING_RATE
    words = []
    for seg in decoder.seg():
        start, end = seg.start_frame / rate, min((seg.end_frame + 1) / rate, duration)
        if seg.word not in _NON_WORDS and end > start:
            words.append((seg.word.split("(")[0], round(start, 3), round(end, 3)))  # "and(2)": a 2nd pronunciation
    return words


class SpokenQuestionAnsweringPipeline(Pipeline):
    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False

    def __call__(self, audio, question=None, **kwargs):
        """Answer `question` (a string or a list of strings) about `audio`. Returns a dict per question (a list of
        `top_k` dicts when `top_k > 1`), a list of them for a list of questions:
        `{"answer", "start", "end", "score", "segment_start", "segment_end"}`."""
        if question is None:
            raise ValueError("question is required: pipe(audio, question='...')")
        return super().__call__({"audio": audio, "question": question}, **kwargs)

    def _sanitize_parameters(self, sampling_rate=None, word_segments=None, words=None, top_k=None,
                             max_answer_segments=None, max_length=None, stride=None, **kwargs):
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        preprocess = {"sampling_rate": sampling_rate, "word_segments": word_segments, "words": words}
        if max_length is not None:
            preprocess["max_length"] = max_length
        if stride is not None:
            preprocess["stride"] = stride
        postprocess = {}
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k must be >= 1, got {top_k}")
            postprocess["top_k"] = top_k
        if max_answer_segments is not None:
            postprocess["max_answer_segments"] = max_answer_segments
        return preprocess, {}, postprocess

    def preprocess(self, inputs, sampling_rate=None, word_segments=None, words=None, max_length=None, stride=None):
        # Windows as run_qa.py cuts them (384 tokens, stride 128), within the model's position embeddings.
        max_length = max_length or min(384, self.model.config.max_position_embeddings)
        stride = stride if stride is not None else min(128, max_length // 3)
        # Empty, silent or non-finite audio fails here, before any recognition is spent on it.
        audio = self.processor.feature_extractor.to_mono(load_audio(inputs["audio"], sampling_rate))
        single = isinstance(inputs["question"], str)
        questions = [inputs["question"]] if single else list(inputs["question"])
        if not questions:
            raise ValueError("question is an empty list")
        if word_segments is None:
            recognised, word_segments = recognize_words(audio)
            words = words if words is not None else recognised
        if words is not None and len(words) != len(word_segments):
            raise ValueError(f"got {len(word_segments)} word segments but {len(words)} words")
        # One passage, many questions: the processor extracts its features once.
        model_inputs = self.processor(
            question=questions, audio=[audio] * len(questions), word_segments=[word_segments] * len(questions),
            sampling_rate=SAMPLING_RATE, max_length=max_length, stride=stride, return_tensors="pt",
        )
        return {"model_inputs": model_inputs, "words": words, "single": single, "num_questions": len(questions)}

    def _forward(self, inputs):
        model_inputs = inputs["model_inputs"]
        keys = ("input_ids", "attention_mask", "token_type_ids", "audio_features", "audio_feature_lengths")
        outputs = self.model(**{k: model_inputs[k] for k in keys})
        return {**inputs, "start_logits": outputs.start_logits, "end_logits": outputs.end_logits}

    def postprocess(self, outputs, top_k=1, max_answer_segments=30):
        words = outputs["words"]
        answers = self.processor.decode_answer(
            outputs["model_inputs"], outputs, words=[words] * outputs["num_questions"] if words else None,
            max_answer_segments=max_answer_segments, top_k=top_k,
        )
        answers = [answers] if outputs["num_questions"] == 1 else answers
        renamed = [[self._rename(a) for a in found] if top_k > 1 else self._rename(found) for found in answers]
        return renamed[0] if outputs["single"] else renamed

    @staticmethod
    def _rename(answer):
        return {"answer": answer["text"], "start": answer["start_time"], "end": answer["end_time"],
                "score": answer["score"], "segment_start": answer["segment_start"],
                "segment_end": answer["segment_end"]}


def require_pipeline_entry(path) -> None:
    """A clear error for a local checkpoint whose config.json lacks this pipeline (saved by another model class or
    an older version): transformers' own message would only say it cannot infer the task."""
    import json
    from pathlib import Path

    config_file = Path(path) / "config.json"
    if not config_file.exists():
        return  # a Hub repo id: transformers resolves it
    config = json.loads(config_file.read_text())
    if TASK not in (config.get("custom_pipelines") or {}):
        raise ValueError(
            f"the checkpoint at {str(path)!r} has no {TASK!r} entry in config.json's custom_pipelines: save it with "
            "a SpeechBERT model class (SpeechBertForQuestionAnswering.save_pretrained) so its pipeline comes along"
        )


def register():
    """Make `pipeline("spoken-question-answering", model=...)` resolve to this class in this process."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.pipelines import PIPELINE_REGISTRY

    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SpokenQuestionAnsweringPipeline,
                                        pt_model=AutoModelForQuestionAnswering, type="multimodal")


__all__ = ["SpokenQuestionAnsweringPipeline", "decode_words", "load_audio", "recognize_words", "register", "require_pipeline_entry"]
