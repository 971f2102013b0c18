"""Offline speech tools: flite text-to-speech and pocketsphinx recognition with word times.

flite (Debian package `flite`) is deterministic: the same text, voice and speed give the same samples, so audio can
be regenerated from text instead of stored. pocketsphinx (PyPI `pocketsphinx`, which ships its en-us models) gives
each recognised word with its start and end time.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from speechbert.pipeline_speechbert import SAMPLING_RATE, decode_words, load_audio

FLITE_VOICES = ("rms", "awb", "slt", "kal16")
ESPEAK_PREFIX = "espeak:"
ESPEAK_WORDS_PER_MINUTE = 175  # espeak-ng's default rate, at duration_stretch 1
MAX_PITCH_CENTS = 1200  # one octave either way


def is_voice(voice: str) -> bool:
    """Whether `synthesize` can be asked for `voice`: a flite voice or `espeak:NAME`."""
    return voice in FLITE_VOICES or (voice.startswith(ESPEAK_PREFIX) and len(voice) > len(ESPEAK_PREFIX))


def is_pitch_shift(cents) -> bool:
    """Whether `shift_pitch` takes `cents`: a non-zero shift of at most an octave."""
    return cents != 0 and -MAX_PITCH_CENTS <= cents <= MAX_PITCH_CENTS


def check_pitch_shifts(cents, name: str) -> None:
    """Refuse, naming the argument `name`, any of `cents` that `shift_pitch` does not take."""
    bad = [c for c in cents if not is_pitch_shift(c)]
    if bad:
        raise ValueError(f"{name} must be non-zero shifts in [-{MAX_PITCH_CENTS}, {MAX_PITCH_CENTS}] cents, got {bad}")


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"`{name}` is not installed: run `apt-get install -y {package}`")
    return path


def synthesize(text: str, voice: str = "slt", duration_stretch: float = 1.0) -> np.ndarray:
    """Speak `text`: float32 mono samples at 16 kHz. `voice` is a flite voice (`FLITE_VOICES`) or `espeak:NAME`, an
    espeak-ng voice (`espeak-ng --voices=en`; `NAME+VARIANT` such as `en-us+f3` too), a formant synthesiser quite
    unlike flite's, resampled to 16 kHz by sox. `duration_stretch` > 1 speaks slower. Both are deterministic."""
    if not 0.5 <= duration_stretch <= 2.0:
        raise ValueError(f"duration_stretch must be in [0.5, 2.0], got {duration_stretch}")
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    if voice.startswith(ESPEAK_PREFIX):
        return _espeak(text, voice[len(ESPEAK_PREFIX):], duration_stretch)
    if voice not in FLITE_VOICES:
        raise ValueError(f"voice must be one of {FLITE_VOICES} or 'espeak:NAME', got {voice!r}")
    flite = require_binary("flite", "flite")
    with tempfile.TemporaryDirectory() as tmp:
        wav, txt = Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text)
        subprocess.run(
            [flite, "-voice", voice, "--setf", f"duration_stretch={duration_stretch}", "-f", str(txt), "-o", str(wav)],
            check=True, capture_output=True,
        )
        audio, rate = sf.read(wav, dtype="float32")
    if rate != SAMPLING_RATE:
        raise RuntimeError(f"flite voice {voice} produced {rate} Hz audio, expected {SAMPLING_RATE} Hz")
    return audio


def _espeak(text: str, name: str, duration_stretch: float) -> np.ndarray:
    espeak, sox = require_binary("espeak-ng", "espeak-ng"), require_binary("sox", "sox")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"espeak-ng voice name must be non-empty without spaces, got {name!r}")
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav, txt = Path(tmp) / "raw.wav", Path(tmp) / "out.wav", Path(tmp) / "in.txt"
        txt.write_text(text)
        run = subprocess.run([espeak, "-v", name, "-s", str(round(ESPEAK_WORDS_PER_MINUTE / duration_stretch)),
                              "-f", str(txt), "-w", str(raw)], capture_output=True, text=True)
        if run.returncode != 0 or not raw.exists() or raw.stat().st_size <= 44:
            raise ValueError(f"espeak-ng could not speak with voice {name!r} (see `espeak-ng --voices=en`): "
                             f"{run.stderr.strip() or 'no audio'}")
        # -D: no dither, so that the same text gives the same samples (the records keep their checksum).
        subprocess.run([sox, "-q", "-D", str(raw), "-r", str(SAMPLING_RATE), "-c", "1", "-b", "16", str(wav)],
                       check=True, capture_output=True)
        audio, rate = sf.read(wav, dtype="float32")
    return audio


def shift_pitch(audio: np.ndarray, cents: int) -> np.ndarray:
    """`audio` (16 kHz mono float32) with its pitch and formants moved by `cents` (100 a semitone) and its duration
    kept, with sox's `pitch` effect: a male flite voice raised 300-500 cents sounds more like a smaller speaker.
    The output has exactly the input's length (sox's differs by a few samples), so word times stay valid."""
    cents = int(cents)
    if not is_pitch_shift(cents):
        raise ValueError(f"cents must be a non-zero shift in [-1200, 1200] (100 a semitone), got {cents}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"audio must be non-empty mono samples, got shape {audio.shape}")
    sox = require_binary("sox", "sox")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, audio, SAMPLING_RATE, subtype="FLOAT")
        subprocess.run([sox, "-q", str(src), "-e", "floating-point", str(dst), "pitch", str(cents)],
                       check=True, capture_output=True)
        shifted, rate = sf.read(dst, dtype="float32")
    if rate != SAMPLING_RATE:
        raise RuntimeError(f"sox produced {rate} Hz audio, expected {SAMPLING_RATE} Hz")
    if shifted.size >= audio.size:
        return np.ascontiguousarray(shifted[: audio.size])
    return np.concatenate([shifted, np.zeros(audio.size - shifted.size, np.float32)])


class AlignmentError(RuntimeError):
    """Forced alignment found no path through the reference words."""


def _decoder(**options):
    try:
        from pocketsphinx import Decoder
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError("pocketsphinx is not installed: run `pip install pocketsphinx==5.1.1`") from error
    return Decoder(samprate=SAMPLING_RATE, loglevel="FATAL", **options)


class SpeechRecognizer:
    """pocketsphinx en-us recognition and forced alignment, with word times.

    Loading the models takes a moment, so one instance is kept per process and reused. Words missing from the
    dictionary get espeak-ng pronunciations before alignment (they stay added for later calls).
    """

    def __init__(self):
        self.asr = _decoder()
        # Long passages only align with very wide beams.
        self.aligner = _decoder(beam=1e-100, wbeam=1e-100, pbeam=1e-100)

    def recognize(self, audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> list[tuple[str, float, float]]:
        """[(word, start_s, end_s), ...] of the recognised words, without silences and fillers."""
        return self._decode(self.asr, audio, sampling_rate)

    def add_missing_words(self, words) -> dict[str, str]:
        """Give every word the dictionary lacks an espeak-ng pronunciation; returns those added."""
        from .pronounce import espeak_pronunciations

        missing = sorted({w for w in words if self.aligner.lookup_word(w) is None})
        added = espeak_pronunciations(missing)
        for word, phones in added.items():
            self.aligner.add_word(word, phones, update=True)
        unknown = sorted(set(missing) - set(added))
        if unknown:
            raise AlignmentError(f"no pronunciation for {unknown}")
        return added

    def align(self, audio: np.ndarray, words: list[str], sampling_rate: int = SAMPLING_RATE, tail=()):
        """[(word, start_s, end_s), ...]: the reference `words`, in order, with their times in `audio`.

        `tail`: words spoken after `words` (a closing phrase such as "and that is all"), aligned with them but not
        returned, and allowed to come back incomplete: the aligner tends to lose the last word of a passage, and a
        tail takes that loss instead of the passage.
        """
        words, tail = list(words), list(tail)
        if not words:
            raise AlignmentError("nothing to align: no reference words")
        self.add_missing_words(words + tail)
        self.aligner.set_align_text(" ".join(words + tail))
        aligned = self._decode(self.aligner, audio, sampling_rate)
        if [w for w, _, _ in aligned[: len(words)]] != words or (not tail and len(aligned) != len(words)):
            raise AlignmentError(
                f"alignment returned {min(len(aligned), len(words))} of {len(words)} words"
                + ("" if aligned else " (no path: audio and text disagree)")
            )
        return aligned[: len(words)]

    @staticmethod
    def _decode(decoder, audio, sampling_rate):
        if sampling_rate != SAMPLING_RATE:
            raise ValueError(f"pocketsphinx needs {SAMPLING_RATE} Hz audio, got {sampling_rate} Hz")
        return decode_words(decoder, audio)


_RECOGNIZER = None


def recognize(audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> list[tuple[str, float, float]]:
    """ASR with pocketsphinx's en-us models: [(word, start_s, end_s), ...] without silences and fillers."""
    global _RECOGNIZER
    if _RECOGNIZER is None:
        _RECOGNIZER = SpeechRecognizer()
    return _RECOGNIZER.recognize(audio, sampling_rate)


def read_audio(path) -> np.ndarray:
    """Mono float32 16 kHz audio from a file (down-mixed and resampled when needed); the pipeline's decoder."""
    return load_audio(Path(path))
