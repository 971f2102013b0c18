"""`spoken-question-answering` pipeline: audio + question(s) -> answer words, start and end seconds, score.

    from transformers import pipeline
    qa = pipeline(model="path/or/repo", trust_remote_code=True)    # the task comes from the checkpoint's config
    qa("passage.wav", question="Who ruled Normandy?", top_k=3)

Audio is a path, raw bytes, a `{"array", "sampling_rate"}` dict or an array with `sampling_rate=`; it is down-mixed
and resampled to 16 kHz. Word segments come from, in this order: `word_segments` when given; the checkpoint's own
word segmenter (`config.word_segmenter`, trained by `run_segmenter.py`: no recognition, and no answer words unless
`words` are given); else pocketsphinx recognition (an optional dependency: `pip install pocketsphinx`), whose words
become the answer text. `segmenter="asr"` or `"model"` chooses explicitly. Several questions about one passage share
its features.
"""

import io

import numpy as np
import torch
from transformers import Pipeline

from .feature_extraction_speechbert import to_float_samples

SAMPLING_RATE = 16000
TASK = "spoken-question-answering"
_NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[BREATH]", "[COUGH]", "[UH]", "[UM]", "[SMACK]"}


def check_sampling_rate_type(sampling_rate):
    if sampling_rate is not None and (isinstance(sampling_rate, bool) or not isinstance(
            sampling_rate, (int, np.integer)) or sampling_rate <= 0):
        raise ValueError(f"sampling_rate must be a positive integer number of Hz (e.g. 16000), got {sampling_rate!r} "
                         f"({type(sampling_rate).__name__})")


def check_integer_options(options) -> None:
    """A `ValueError` naming the first of `options` ((name, value, low, high) each; a None value is not given) that is
    not an integer in [low, high] (high None: no upper bound; the upper bound is the model's position embeddings)."""
    for name, value, low, high in options:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in [{low}, {high}] (the model's position embeddings)"
            raise ValueError(f"{name} must be {bounds}, got {value}")


def check_questions(question, tokenizer) -> tuple[list[str], list[int]]:
    """The questions of a call (one string or a list) and each one's number of word pieces, or a `ValueError` naming
    the bad one: not a string, empty, or nothing the tokenizer reads as a word piece (zero-width or control
    characters, a lone combining accent), which would otherwise get a confident answer to no question."""
    if not isinstance(question, (str, list, tuple)):
        raise ValueError(f"question must be a string or a list of strings, got {type(question).__name__} {question!r}")
    questions = [question] if isinstance(question, str) else list(question)
    if not questions:
        raise ValueError("question is an empty list")
    for i, q in enumerate(questions):
        if not isinstance(q, str):
            raise ValueError(f"question {i} must be a string, got {type(q).__name__} {q!r}")
        if not q.strip():
            raise ValueError(f"question {i} is empty: expected a non-empty string, got {q!r}")
    pieces = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for i, count in enumerate(pieces):
        if not count:
            raise ValueError(f"question {i} ({questions[i]!r}) has no word pieces: the tokenizer reads nothing in it "
                             "(control, zero-width or combining characters only)")
    return questions, pieces


def downmix(array: np.ndarray) -> np.ndarray:
    """One passage from a mono, (channels, samples) or (samples, channels) array with at most 2 channels. Anything
    else (several passages, many channels) is an error naming the shape, never averaged into one passage."""
    if array.ndim == 1:
        return array
    if array.ndim == 2:
        rows, cols = array.shape
        if rows <= 2 < cols:
            return array.mean(axis=0) if rows == 2 else array[0]
        if cols <= 2 < rows:  # soundfile's (frames, channels) layout
            return array.mean(axis=1) if cols == 2 else array[:, 0]
    raise ValueError(
        f"audio has shape {tuple(array.shape)}: expected one passage, mono (samples,) or stereo (2, samples) / "
        "(samples, 2). Pick or down-mix the channels yourself; pass one passage per call"
    )


def _check_wav_complete(source, name) -> None:
    """Warn when a WAV file's header declares more sample bytes than the file holds (a cut or partial download), or
    fewer than follow it with no RIFF chunk after them (a header written before the recording ended): libsndfile
    reads what the header says without a word."""
    import warnings

    if isinstance(source, io.BytesIO):
        data = source.getbuffer()
        total, head = len(data), bytes(data[:65536])

        def read_at(position, count):
            return bytes(data[position : position + count])
    else:
        try:
            import os

            total = os.path.getsize(source)
            with open(source, "rb") as f:
                head = f.read(65536)
        except (OSError, TypeError):
            return

        def read_at(position, count):
            with open(source, "rb") as f:
                f.seek(position)
                return f.read(count)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            present = total - (offset + 8)
            if 0 < size < 0xFFFFFFFF and present < size:
                warnings.warn(f"{name} is cut short: its WAV header declares {size} bytes of samples but only "
                              f"{present} are present ({100 * present / size:.1f}%); only those are read",
                              UserWarning, stacklevel=4)
            elif present > size + (size & 1) + 8:  # room for another chunk after the samples: is there one?
                following = read_at(offset + 8 + size + (size & 1), 4)
                if not (len(following) == 4 and all(32 <= c < 127 for c in following)):
                    warnings.warn(f"{name}: its WAV header declares {size} bytes of samples but {present} follow, "
                                  "and no RIFF chunk comes after them (a header written before the recording "
                                  f"ended?); only the first {size} bytes are read", UserWarning, stacklevel=4)
            return
        offset += 8 + size + (size & 1)


def load_audio(audio, sampling_rate=None) -> np.ndarray:
    """Mono float32 16 kHz samples from a path, bytes, a {"array", "sampling_rate"} dict or an array + rate.

    Arrays may be float or PCM integers (int16, int32, uint8: scaled to [-1, 1]), mono or stereo in either layout;
    files are whatever libsndfile reads (WAV, FLAC, OGG, MP3), down-mixed."""
    import soundfile as sf

    check_sampling_rate_type(sampling_rate)
    if isinstance(audio, dict):
        array = audio.get("array", audio.get("raw"))
        if array is None or "sampling_rate" not in audio:
            raise ValueError("an audio dict needs 'array' (or 'raw') and 'sampling_rate'")
        audio, sampling_rate = array, audio["sampling_rate"]
        check_sampling_rate_type(sampling_rate)
    if isinstance(audio, (str, bytes, bytearray, memoryview, io.IOBase)) or hasattr(audio, "__fspath__"):
        if isinstance(audio, (bytes, bytearray, memoryview)) and not len(audio):
            raise ValueError("audio is empty (0 bytes)")
        source = io.BytesIO(bytes(audio)) if isinstance(audio, (bytes, bytearray, memoryview)) else audio
        path_like = isinstance(audio, str) or hasattr(audio, "__fspath__")
        name = str(audio) if path_like else f"{type(audio).__name__} input"
        try:
            array, sampling_rate = sf.read(source, dtype="float32", always_2d=True)
        except Exception as error:  # noqa: BLE001 - soundfile raises several types for undecodable input
            raise ValueError(f"could not decode audio from {name}: {error}. Supported: WAV, FLAC, OGG, MP3 "
                             "(whatever libsndfile reads)") from error
        if isinstance(source, io.BytesIO) or path_like:
            _check_wav_complete(source, name)
        audio = array.mean(axis=1)
    elif sampling_rate is None:
        raise ValueError("an audio array needs its sampling_rate (e.g. sampling_rate=16000)")
    elif not isinstance(audio, (np.ndarray, torch.Tensor, list, tuple)):
        raise ValueError(f"audio must be a path, bytes, a dict or an array of samples, got {type(audio).__name__}")
    audio = downmix(to_float_samples(audio))
    if audio.size == 0:
        raise ValueError("audio is empty (0 samples)")
    return resample(audio, sampling_rate)


# Rates accepted: telephone speech (8 kHz) lies well inside; below 4 kHz no speech band survives, above 768 kHz no
# recording format goes.
MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 4000, 768000
# torchaudio's windowed-sinc kernel is (p, q + a few) floats for the reduced ratio p / q = 16000 / rate: 16 MB for
# 4 M entries, but 1 GB for 16001 Hz (p = 16000, q = 16001). Rates sharing few factors with 16000 are resampled in
# the frequency domain instead, at a cost that does not depend on the rate's factors.
MAX_KERNEL_ENTRIES = 4_000_000


def resample(audio: np.ndarray, sampling_rate) -> np.ndarray:
    """Mono float32 samples at `sampling_rate` resampled to 16 kHz: torchaudio's windowed sinc for the usual rates
    (8, 11.025, 22.05, 44.1, 48 kHz ...), band-limited FFT resampling where that kernel would be large; a rate outside
    [4000, 768000] Hz is a `ValueError` naming it."""
    from fractions import Fraction

    sampling_rate = int(sampling_rate)
    if not MIN_SAMPLING_RATE <= sampling_rate <= MAX_SAMPLING_RATE:
        raise ValueError(f"sampling rate {sampling_rate} Hz is outside [{MIN_SAMPLING_RATE}, {MAX_SAMPLING_RATE}] Hz: "
                         "not a speech recording's rate (a damaged header?)")
    if sampling_rate == SAMPLING_RATE:
        return audio
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    ratio = Fraction(SAMPLING_RATE, sampling_rate)
    if ratio.numerator * ratio.denominator <= MAX_KERNEL_ENTRIES:
        import torchaudio

        return torchaudio.functional.resample(waveform, ratio.denominator, ratio.numerator).numpy()
    length = max(1, round(len(audio) * SAMPLING_RATE / sampling_rate))
    spectrum = torch.fft.rfft(waveform.double())
    kept = min(spectrum.numel(), length // 2 + 1)
    resized = torch.zeros(length // 2 + 1, dtype=spectrum.dtype)
    resized[:kept] = spectrum[:kept]
    return (torch.fft.irfft(resized, n=length) * (length / len(audio))).float().numpy()


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
        `{"answer", "start", "end", "score", "segment_start", "segment_end"}`, plus `"answer_from_audio"` with
        `answer_from_audio=True`: the answer's words read back from their audio codes (`audio_words`), a guess for
        when no words are known (`"answer"` is None at the word segmenter's segments without `words=`)."""
        if question is None:
            raise ValueError("question is required: pipe(audio, question='...')")
        return super().__call__({"audio": audio, "question": question}, **kwargs)

    def _sanitize_parameters(self, sampling_rate=None, word_segments=None, words=None, top_k=None,
                             max_answer_segments=None, max_length=None, stride=None, window_batch_size=None,
                             segmenter=None, answer_from_audio=None, **kwargs):
        # Every argument is checked here, before any audio is decoded or recognised.
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        check_sampling_rate_type(sampling_rate)
        if segmenter not in (None, "asr", "model"):
            raise ValueError(f"segmenter must be 'asr' (pocketsphinx word times) or 'model' (the checkpoint's word "
                             f"segmenter), got {segmenter!r}")
        if segmenter is not None and word_segments is not None:
            raise ValueError(f"segmenter={segmenter!r} and word_segments exclude each other: given word_segments are "
                             "used as they are")
        if segmenter == "model" and not getattr(self.model.config, "word_segmenter", False):
            raise ValueError("segmenter='model' but this checkpoint has no word segmenter (config.word_segmenter is "
                             "False): train one with run_segmenter.py, or use segmenter='asr'")
        limit = self.model.config.max_position_embeddings
        check_integer_options((("top_k", top_k, 1, None), ("max_answer_segments", max_answer_segments, 1, None),
                               ("max_length", max_length, 8, limit), ("stride", stride, 0, None),
                               ("window_batch_size", window_batch_size, 1, None)))
        if stride is not None and max_length is not None and stride >= max_length:
            raise ValueError(f"stride ({stride}) must be smaller than max_length ({max_length})")
        if words is not None:
            from .processing_speechbert import check_words

            check_words(words)
            words = [str(word) for word in words]  # a numpy array of strings too (its truth value is ambiguous)
        if word_segments is not None:
            segments = np.asarray(word_segments, dtype=object)
            if segments.ndim != 2 or segments.shape[1] != 2 or not len(segments):
                raise ValueError(f"word_segments must be a non-empty list of (start, end) pairs in seconds, got shape "
                                 f"{segments.shape}")
            try:
                np.asarray(word_segments, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"word_segments must hold numbers (seconds): {error}") from error
        if words is not None and word_segments is not None and len(words) != len(word_segments):
            raise ValueError(f"got {len(word_segments)} word segments but {len(words)} words")
        if answer_from_audio is not None and not isinstance(answer_from_audio, bool):
            raise ValueError(f"answer_from_audio must be True or False, got {answer_from_audio!r}")
        preprocess = {"sampling_rate": sampling_rate, "word_segments": word_segments, "words": words,
                      "segmenter": segmenter}
        if max_length is not None:
            preprocess["max_length"] = max_length
        if stride is not None:
            preprocess["stride"] = stride
        forward = {"window_batch_size": window_batch_size} if window_batch_size is not None else {}
        postprocess = {}
        if top_k is not None:
            postprocess["top_k"] = top_k
        if max_answer_segments is not None:
            postprocess["max_answer_segments"] = max_answer_segments
        if answer_from_audio:
            postprocess["answer_from_audio"] = True
        return preprocess, forward, postprocess

    def preprocess(self, inputs, sampling_rate=None, word_segments=None, words=None, max_length=None, stride=None,
                   segmenter=None):
        # Windows as run_qa.py cuts them (384 tokens, stride 128), within the model's position embeddings.
        max_length = max_length or min(384, self.model.config.max_position_embeddings)
        stride = stride if stride is not None else min(128, max_length // 3)
        single = isinstance(inputs["question"], str)
        questions, pieces = check_questions(inputs["question"], self.processor.tokenizer)
        # Windows must have room for audio after the longest question: checked before any recognition.
        self.processor.plan_windows([min(max(pieces), 64)], [1], max_length, stride)
        # Empty, silent or non-finite audio fails here, before any recognition is spent on it.
        audio = self.processor.feature_extractor.to_mono(load_audio(inputs["audio"], sampling_rate))
        frames = None
        if word_segments is None:
            if segmenter is None:
                segmenter = "model" if getattr(self.model.config, "word_segmenter", False) else "asr"
            if segmenter == "model":
                # The segmenter's frames are the passage's features: extracted once for both.
                frames = self.processor.feature_extractor.frame_features(audio)
                word_segments = self.model_segments(audio, frames)
            else:
                recognised, word_segments = recognize_words(audio)
                words = words if words is not None else recognised
        if words is not None and len(words) != len(word_segments):
            raise ValueError(f"got {len(word_segments)} word segments but {len(words)} words")
        # One passage, many questions: its features are extracted once; `_forward` pads them per window batch.
        data, windows, extracted = self.processor.prepare(
            questions, [audio] * len(questions), [word_segments] * len(questions), SAMPLING_RATE,
            max_length=max_length, stride=stride, frame_features=None if frames is None else [frames] * len(questions))
        return {"data": data, "windows": windows, "extracted": extracted, "words": words, "single": single,
                "num_questions": len(questions)}

    def model_segments(self, audio: np.ndarray, frames: np.ndarray | None = None) -> list[tuple[float, float]]:
        """Word segments of one mono 16 kHz passage from the checkpoint's word segmenter (`frames`: the passage's
        `frame_features`, if already computed)."""
        if frames is None:
            frames = self.processor.feature_extractor.frame_features(audio)
        base = getattr(self.model, self.model.base_model_prefix, self.model)
        segments = base.segment_words(frames)[0]
        if not segments:
            raise ValueError("the word segmenter found no speech in the audio: is it silent or not speech?")
        return segments

    def _forward(self, inputs, window_batch_size=16):
        """The windows in batches of `window_batch_size`: memory is bounded by the batch whatever the number of
        questions, since each batch's audio features are gathered from the passage's only when it runs."""
        data, windows = inputs["data"], inputs["windows"]
        starts, ends = [], []
        for a in range(0, len(windows), window_batch_size):
            features, lengths = self.processor.gather_audio(windows, inputs["extracted"], a, a + window_batch_size)
            batch = {k: torch.as_tensor(data[k][a : a + window_batch_size], device=self.model.device)
                     for k in ("input_ids", "attention_mask", "token_type_ids")}
            dtype = next(self.model.parameters()).dtype
            outputs = self.model(**batch, audio_features=torch.from_numpy(features).to(self.model.device, dtype),
                                 audio_feature_lengths=torch.from_numpy(lengths).to(self.model.device))
            starts.append(outputs.start_logits.detach().float().cpu())
            ends.append(outputs.end_logits.detach().float().cpu())
        return {**inputs, "start_logits": torch.cat(starts), "end_logits": torch.cat(ends)}

    def postprocess(self, outputs, top_k=1, max_answer_segments=30, answer_from_audio=False):
        words = outputs["words"]
        answers = self.processor.decode_answer(
            outputs["data"], outputs, words=[words] * outputs["num_questions"] if words else None,
            max_answer_segments=max_answer_segments, top_k=top_k,
        )
        answers = [answers] if outputs["num_questions"] == 1 else answers
        renamed = [[self._rename(a) for a in found] if top_k > 1 else self._rename(found) for found in answers]
        if answer_from_audio:
            for example, found in enumerate(renamed):
                for answer in found if top_k > 1 else [found]:
                    answer["answer_from_audio"] = self.audio_words(outputs["extracted"][example],
                                                                   answer["segment_start"], answer["segment_end"])
        return renamed[0] if outputs["single"] else renamed

    def audio_words(self, extracted, first: int, last: int) -> str:
        """The answer read back from the audio alone: each segment `first..last`'s code (the audio encoder's output)
        as the word piece whose input embedding is nearest to it, among the word-initial pieces (or the checkpoint's
        `soft_word_embedding_pieces`). Step 1 trains a code towards its word's first piece, so a word of several
        pieces reads as its first ("normans" as "norman"), and a word the encoder never heard as a near one: a guess
        without recognition, for when no `words` are known (the word segmenter's path). `extracted`: one example's
        `(features, lengths)` from `SpeechBertProcessor.prepare`."""
        features, lengths = extracted
        padded, counts = self.processor.feature_extractor.pad_segments([features[first : last + 1]],
                                                                       [lengths[first : last + 1]])
        base = getattr(self.model, self.model.base_model_prefix, self.model)
        dtype = next(self.model.parameters()).dtype
        with torch.no_grad():
            codes = base.encode_audio(torch.from_numpy(padded).to(self.model.device, dtype),
                                      torch.from_numpy(counts).to(self.model.device))
            ids = base.nearest_pieces(codes, self._readable_pieces())
        return " ".join(self.processor.tokenizer.convert_ids_to_tokens(ids.tolist()))

    def _readable_pieces(self) -> torch.Tensor:
        cached = getattr(self, "_readable_pieces_cache", None)
        if cached is None:
            pieces = self.model.config.soft_word_embedding_pieces
            if pieces is None:
                from .processing_speechbert import word_initial_ids

                pieces = word_initial_ids(self.processor.tokenizer)
            cached = self._readable_pieces_cache = torch.as_tensor(np.asarray(pieces), dtype=torch.long)
        return cached

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


__all__ = ["SpokenQuestionAnsweringPipeline", "check_questions", "decode_words", "load_audio", "recognize_words",
           "register", "require_pipeline_entry"]
