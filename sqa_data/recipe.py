"""The Spoken SQuAD recipe for one paragraph: normalise, synthesise, recognise, align, score.

Spoken SQuAD (Li, Wu, Liu and Lee, Interspeech 2018) read SQuAD passages with a TTS engine and recognised them with
CMU Sphinx. Here flite reads them and pocketsphinx recognises them; forced alignment of the reference words gives
gold word times, so every answer gets a gold time span, and jiwer's word alignment says which reference words the ASR
got wrong.
"""

import hashlib
import time

import jiwer
import numpy as np

from .normalize import answer_word_span, normalize, spoken_text
from .schema import paragraph_record
from .speech import FLITE_VOICES, synthesize

SPEEDS = (0.9, 1.0, 1.1)  # flite duration_stretch: slower and faster readers


def voice_and_speed(paragraph_id: str) -> tuple[str, float]:
    """Deterministic voice and speed of a paragraph, from a hash of its id."""
    h = int(hashlib.sha1(paragraph_id.encode()).hexdigest(), 16)
    return FLITE_VOICES[h % len(FLITE_VOICES)], SPEEDS[(h // len(FLITE_VOICES)) % len(SPEEDS)]


def audio_checksum(audio: np.ndarray) -> str:
    """sha1 of the 16-bit PCM samples: regenerated audio must match what the word times were measured on."""
    return hashlib.sha1((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()).hexdigest()


def asr_error_flags(reference: list[str], hypothesis: list[str]) -> tuple[float, list[bool], list[bool]]:
    """WER, whether each reference word was recognised correctly, and whether ASR inserted words just before it."""
    if not hypothesis:
        return 1.0, [False] * len(reference), [False] * len(reference)
    output = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    correct, inserted_before = [False] * len(reference), [False] * len(reference)
    for chunk in output.alignments[0]:
        if chunk.type == "equal":
            correct[chunk.ref_start_idx : chunk.ref_end_idx] = [True] * (chunk.ref_end_idx - chunk.ref_start_idx)
        elif chunk.type == "insert" and chunk.ref_start_idx < len(reference):
            inserted_before[chunk.ref_start_idx] = True
    return float(output.wer), correct, inserted_before


def span_has_asr_error(first: int, last: int, correct: list[bool], inserted_before: list[bool]) -> bool:
    """An answer's words [first, last] hold an ASR error: a wrong or deleted word, or a word inserted inside it."""
    return not all(correct[first : last + 1]) or any(inserted_before[first + 1 : last + 1])


class StageError(RuntimeError):
    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


class Timer:
    """Seconds spent in each stage of one paragraph."""

    def __init__(self):
        self.timings, self._clock = {}, time.perf_counter()

    def lap(self, stage: str):
        now = time.perf_counter()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + now - self._clock, 4)
        self._clock = now


def _run_stage(stage, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except StageError:
        raise
    except Exception as error:  # noqa: BLE001 - recorded with its reason, the build goes on
        raise StageError(stage, str(error) or repr(error)) from error


def build_paragraph(paragraph: dict, recognizer) -> dict:
    """One SQuAD paragraph (`paragraph_id`, `title`, `context`, `qas`) -> its compact spoken record (no audio):
    flite reads it with the paragraph's voice and speed, then `score_paragraph` recognises and aligns it.

    Raises `StageError` naming the stage that failed (normalize, synthesize, recognize, align).
    """
    timer = Timer()
    words = normalize(paragraph["context"])
    if not words:
        raise StageError("normalize", "the context has no speakable words")
    text = spoken_text(paragraph["context"], words)
    voice, speed = voice_and_speed(paragraph["paragraph_id"])
    timer.lap("normalize")
    audio = _run_stage("synthesize", synthesize, text, voice=voice, duration_stretch=speed)
    timer.lap("synthesize")
    record = score_paragraph(paragraph, words, audio, recognizer, timer)
    record.update(spoken_text=text, voice=voice, speed=speed)
    return record


def score_paragraph(paragraph: dict, words: list, audio: np.ndarray, recognizer, timer: Timer | None = None) -> dict:
    """Recognise `audio`, align the reference `words` to it, and score every answer: the part of the recipe shared
    by synthesised and real recordings."""
    timer = timer or Timer()
    asr = _run_stage("recognize", recognizer.recognize, audio)
    timer.lap("recognize")
    reference = [w.text for w in words]
    aligned = _run_stage("align", recognizer.align, audio, reference)
    timer.lap("align")
    hypothesis = [w for w, _, _ in asr]
    wer, correct, inserted_before = asr_error_flags(reference, hypothesis)
    qas = []
    for qa in paragraph["qas"]:
        answers = []
        for answer in qa["answers"]:
            start = answer["answer_start"]
            span = answer_word_span(words, start, start + len(answer["text"]))
            answers.append({
                "text": answer["text"],
                "answer_start": start,
                "word_start": span[0] if span else -1,
                "word_end": span[1] if span else -1,
                "has_asr_error": span_has_asr_error(span[0], span[1], correct, inserted_before) if span else None,
            })
        qas.append({"id": qa["id"], "question": qa["question"], "answers": answers})
    timer.lap("score")
    return paragraph_record(
        paragraph_id=paragraph["paragraph_id"], title=paragraph["title"], context=paragraph["context"],
        spoken_text=" ".join(reference), ref=aligned, ref_char_spans=[[w.char_start, w.char_end] for w in words],
        ref_asr_correct=correct, asr=asr, wer=round(wer, 6), audio_duration=round(len(audio) / 16000, 4),
        audio_sha1=audio_checksum(audio), qas=qas, timings=timer.timings,
    )
