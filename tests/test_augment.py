"""Extra step-1 speech (sqa_data.augment): other voices reading train passages, a spoken lexicon, and their use in
run_pretraining.py together with the voice-robustness option."""

import json
import shutil

import pytest

from sqa_data import augment

from .conftest import need_binaries


def test_voice_jobs_skip_the_paragraphs_own_voice_and_failed_ones():
    records = [{"paragraph_id": "p1", "voice": "awb", "spoken_text": "a b", "ref_words": ["a", "b"]},
               {"paragraph_id": "p2", "failed": {"stage": "align", "reason": "x"}}]
    jobs = augment.voice_jobs(records)
    assert [j["voice"] for j in jobs] == ["rms", "slt", "kal16"]
    assert all(j["paragraph_id"] == f"p1@{j['voice']}" and j["speed"] in (0.9, 1.0, 1.1) for j in jobs)
    assert jobs == augment.voice_jobs(records)  # deterministic


def test_voices_per_paragraph_draws_that_many_other_voices_for_each_paragraph():
    records = [{"paragraph_id": f"p{i}", "voice": "awb", "spoken_text": "a b", "ref_words": ["a", "b"]}
               for i in range(40)]
    voices = ["awb", "espeak:en-us+m3", "espeak:en-us+f2", "espeak:en-gb+m4", "espeak:en-us+f4"]
    jobs = augment.voice_jobs(records, voices, per_paragraph=1)
    assert len(jobs) == 40 and all(j["voice"] != "awb" for j in jobs)
    assert len({j["voice"] for j in jobs}) == 4, "the draw spreads the paragraphs over the voices"
    assert jobs == augment.voice_jobs(records, voices, per_paragraph=1)  # deterministic
    two = augment.voice_jobs(records, voices, per_paragraph=2)
    assert len(two) == 80 and all(len({j["voice"] for j in two if j["paragraph_id"].startswith(f"p{i}@")}) == 2
                                  for i in range(40))
    assert augment.voice_jobs(records, voices, per_paragraph=9) == augment.voice_jobs(records, voices)
    with pytest.raises(ValueError, match="positive integer, got 0"):
        augment.voice_jobs(records, voices, per_paragraph=0)


def test_voices_per_paragraph_is_checked_before_any_build(tmp_path, capsys):
    for argv in (["voices", "--voices_per_paragraph", "0"], ["lexicon", "--voices_per_paragraph", "1"]):
        with pytest.raises(SystemExit):
            augment.main(argv + ["--output_dir", str(tmp_path / "x")])
        assert "--voices_per_paragraph" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [["lexicon", "--max_words", "0"], ["lexicon", "--max_words", "-5"],
                                  ["lexicon", "--words_per_passage", "0"], ["voices", "--max_jobs", "0"],
                                  ["voices", "--num_proc", "0"], ["voices", "--voices_per_paragraph", "0"]])
def test_counts_are_checked_before_any_build(tmp_path, capsys, argv):
    """0 or -5 words used to speak the whole lexicon, 0 words a passage to crash in range(), 0 jobs to build all."""
    with pytest.raises(SystemExit) as exit_info:
        augment.main(argv + ["--output_dir", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert f"argument {argv[1]}: expected a positive integer, got '{argv[2]}'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_voices_that_mostly_fail_are_named(capsys):
    by_voice = {"espeak:en-us+m7": [1, 9], "espeak:en-us+f2": [9, 1], "espeak:en-us+m8": [0, 3]}
    assert augment.warn_failing_voices(by_voice) == ["espeak:en-us+m7"]  # m8: too few passages yet to say
    err = capsys.readouterr().err
    assert "'espeak:en-us+m7' failed 9 of its 10 passages" in err and "f2" not in err


def test_lexicon_words_are_whole_word_pieces_the_dictionary_knows(tokenizer):
    words = augment.lexicon_words(tokenizer, {"normandy", "river", "the", "zzz", "a"})
    assert sorted(words) == ["a", "normandy", "river", "the"]  # no ## pieces, no specials, only dictionary words
    jobs = augment.lexicon_jobs(words, voices=("slt", "rms"), words_per_passage=3)
    assert len(jobs) == 4 and jobs[0]["spoken_text"] == ", ".join(words[:3]) + ". And that is all."
    assert augment.lexicon_words(tokenizer, {"normandy", "river", "the", "zzz", "a"}, max_words=2) == words[:2]


def test_dictionary_words_fold_alternative_pronunciations(tmp_path):
    path = tmp_path / "dict"
    path.write_text("read R IY D\nread(2) R EH D\nrhine R AY N\n")
    assert augment.dictionary_words(path) == {"read", "rhine"}


@pytest.fixture
def speech_tools():
    need_binaries("flite", "espeak-ng")


@pytest.mark.slow
def test_alignment_with_a_tail_returns_the_words_only(speech_tools):
    from sqa_data.speech import AlignmentError, SpeechRecognizer, synthesize

    words = "the normans gave their name to normandy".split()
    audio = synthesize("The Normans gave their name to Normandy." + augment.TAIL_TEXT, voice="kal16")
    recognizer = SpeechRecognizer()
    aligned = recognizer.align(audio, words, tail=augment.TAIL)
    assert [w for w, _, _ in aligned] == words
    assert all(s < e for _, s, e in aligned) and all(a[2] <= b[1] + 1e-6 for a, b in zip(aligned, aligned[1:]))
    assert aligned[-1][2] < len(audio) / 16000 - 0.3  # the tail's speech is after the last word
    # What the aligner returns decides: the tail may come back short, the passage may not.
    timed = [(w, i / 10, (i + 1) / 10) for i, w in enumerate(words + list(augment.TAIL))]
    recognizer._decode = lambda *args: timed[: len(words) + 1]
    assert recognizer.align(audio, words, tail=augment.TAIL) == timed[: len(words)]
    recognizer._decode = lambda *args: timed[: len(words) - 1]
    with pytest.raises(AlignmentError, match="6 of 7 words"):
        recognizer.align(audio, words, tail=augment.TAIL)
    recognizer._decode = lambda *args: timed[: len(words) + 1]
    with pytest.raises(AlignmentError, match="of 7 words"):
        recognizer.align(audio, words)  # without a tail every returned word must be a passage word


@pytest.mark.slow
def test_lexicon_build_resumes_and_its_audio_regenerates(tmp_path, speech_tools, tiny_text_bert):
    import numpy as np

    from sqa_data.dataset import passage_audio

    out = tmp_path / "lexicon"
    args = ["lexicon", "--output_dir", str(out), "--tokenizer", str(tiny_text_bert), "--voices", "slt", "kal16",
            "--words_per_passage", "8", "--max_words", "12"]
    jobs = augment.lexicon_jobs(augment.lexicon_words(
        __import__("transformers").AutoTokenizer.from_pretrained(tiny_text_bert), augment.dictionary_words(), 12),
        ("slt", "kal16"), 8)
    assert len(jobs) == 4
    summary = augment.build(jobs, out, {"test": 1}, chunk_size=2, max_jobs=1)  # rounded up to one shard of 2
    assert summary["built"] + summary["failed"] == 2
    again = augment.build(jobs, out, {"test": 1}, chunk_size=2)  # resumes: only the shard not yet built
    assert again["built"] + again["failed"] == 2
    assert augment.build(jobs, out, {"test": 1}, chunk_size=2)["built"] == 0
    with pytest.raises(SystemExit, match="does not hold the jobs"):
        augment.build(jobs[::-1], out, {"test": 1}, chunk_size=2)
    shutil.rmtree(out)
    augment.main(args)
    rows = augment.read_step1_rows(out)
    assert len(rows) == 4 and {r["voice"] for r in rows} == {"slt", "kal16"}  # the tail keeps every word
    for row in rows:
        assert len(row["ref_words"]) == len(row["ref_starts"]) == len(row["ref_ends"])
        assert all(s < e for s, e in zip(row["ref_starts"], row["ref_ends"]))
        assert row["ref_ends"][-1] <= row["audio_duration"] + 0.01
    audio = passage_audio(rows[0])  # regenerated with flite and checked against audio_sha1
    assert abs(len(audio) / 16000 - rows[0]["audio_duration"]) < 1e-3 and np.abs(audio).max() > 0.01
    with pytest.raises(SystemExit, match="other settings"):
        augment.main(args[:-1] + ["11"])


@pytest.mark.slow
def test_pretraining_with_extra_speech_and_a_voice_left_out(tmp_path, speech_tools, tiny_corpus, tiny_text_bert):
    import run_pretraining
    from sqa_data.dataset import read_records
    from tests.test_training import common_args

    train_voice = read_records(tiny_corpus)["train"][0]["voice"]
    other = next(v for v in ("rms", "awb", "slt", "kal16") if v != train_voice)
    voices = tmp_path / "voices"
    augment.main(["voices", "--records", str(tiny_corpus), "--output_dir", str(voices), "--voices", other,
                  train_voice])
    rows = augment.read_step1_rows(voices)
    assert [r["voice"] for r in rows] == [other]  # a paragraph's own voice is not read again
    assert rows[0]["ref_words"] == read_records(tiny_corpus)["train"][0]["ref_words"]

    pre = tmp_path / "pre"
    base = common_args(pre, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--stage", "1", "--max_steps", "1",
        "--save_strategy", "no", "--config_overrides", "audio_encoder_hidden_size=8"]
    run_pretraining.main(base + ["--stage1_extra_records", str(voices)])
    settings = json.loads((pre / "stage1" / "settings.json").read_text())
    assert settings["extra_passages"] == 1 and settings["train_questions"] == 2
    # Leaving the train passage's voice out keeps only the other voice's reading of it.
    out = tmp_path / "pre_left_out"
    run_pretraining.main([a if a != str(pre) else str(out) for a in base] +
                         ["--stage1_extra_records", str(voices), "--exclude_train_voices", train_voice])
    settings = json.loads((out / "stage1" / "settings.json").read_text())
    assert settings["train_questions"] == 0 and settings["extra_passages"] == 1


def test_espeak_voices_speak_deterministically_at_16_khz():
    need_binaries("espeak-ng", "sox")
    import numpy as np

    from sqa_data.speech import synthesize

    text = "The Normans gave their name to Normandy."
    audio = synthesize(text, "espeak:en-us+f3")
    assert audio.dtype == np.float32 and audio.ndim == 1 and 1.0 < audio.size / 16000 < 5.0
    assert (synthesize(text, "espeak:en-us+f3") == audio).all()  # records keep their checksum
    assert synthesize(text, "espeak:en-us+f3", duration_stretch=1.5).size > 1.3 * audio.size
    with pytest.raises(ValueError, match="'zz-no-such-voice'"):
        synthesize(text, "espeak:zz-no-such-voice")
    with pytest.raises(ValueError, match="flite voices|'espeak:NAME'"):
        synthesize(text, "nobody")


def test_an_evaluation_speech_folder_is_refused_for_training_and_measured_by_codes(tmp_path, speech_tools, tiny_corpus,
                                                                                  tiny_text_bert, capsys):
    need_binaries("sox")
    with pytest.raises(SystemExit, match="only train passages"):
        augment.main(["voices", "--records", str(tiny_corpus), "--split", "validation", "--output_dir",
                      str(tmp_path / "x"), "--voices", "rms"])
    with pytest.raises(SystemExit):
        augment.main(["voices", "--records", str(tiny_corpus), "--output_dir", str(tmp_path / "y"), "--voices",
                      "bob"])
    assert "['bob'] are neither flite voices" in capsys.readouterr().err
    folder = tmp_path / "espeak-validation"
    summary = augment.main(["voices", "--records", str(tiny_corpus), "--split", "validation", "--evaluation",
                            "--voices", "espeak:en-us+f3", "--output_dir", str(folder)])
    assert summary["built"] == 1
    rows = augment.read_step1_rows(folder, evaluation=True)
    assert rows[0]["voice"] == "espeak:en-us+f3" and len(rows[0]["ref_starts"]) == len(rows[0]["ref_words"])
    with pytest.raises(ValueError, match="evaluation passages"):
        augment.read_step1_rows(folder)
    # Code quality on it, as a split named after the folder, beside the corpus's.
    from sqa_train.codes import main as codes_main

    from .test_codes import _speechbert_checkpoint

    model_dir = tmp_path / "model"
    _speechbert_checkpoint(model_dir, tiny_text_bert)
    results = codes_main(["--model", str(model_dir), "--dataset", str(tiny_corpus), "--split", "validation",
                          "--speech", str(folder), "--audio_cache_dir", str(tmp_path / "audio")])
    assert set(results) == {"validation", "espeak-validation"}
    assert results["espeak-validation"]["segments"] == len(rows[0]["ref_words"])
    assert set(results["espeak-validation"]["per_voice"]) == {"espeak:en-us+f3"}


def test_pitch_rows_copy_each_passage_once_with_a_drawn_shift():
    rows = [{"paragraph_id": "p1", "voice": "rms", "ref_words": ["a"]},
            {"paragraph_id": "p1", "voice": "rms", "ref_words": ["a"]},  # a second question of the same passage
            {"paragraph_id": "p2@awb", "voice": "awb", "ref_words": ["b"]}]
    copies = augment.pitch_rows(rows, [300, 500])
    assert [c["paragraph_id"].split("~")[0] for c in copies] == ["p1", "p2@awb"]
    assert all(c["paragraph_id"] == f"{r}~pitch+{c['pitch_cents']}" for c, r in zip(copies, ["p1", "p2@awb"]))
    assert {c["pitch_cents"] for c in copies} <= {300, 500} and copies == augment.pitch_rows(rows, [300, 500])
    assert "pitch_cents" not in rows[0]  # the originals are left as they were
    for bad in ([], [0], [1300]):
        with pytest.raises(ValueError, match="non-zero cents"):
            augment.pitch_rows(rows, bad)
    with pytest.raises(ValueError, match="already pitch-shifted"):
        augment.pitch_rows(copies, [300])


def test_shift_pitch_keeps_the_length_and_raises_the_pitch():
    need_binaries("sox")
    import numpy as np

    from sqa_data.speech import shift_pitch

    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    up = shift_pitch(tone, 1200)  # one octave
    assert up.shape == tone.shape and up.dtype == np.float32
    peak = lambda x: np.argmax(np.abs(np.fft.rfft(x[2000:-2000])))  # noqa: E731
    assert peak(up) == pytest.approx(2 * peak(tone), rel=0.05)
    for bad in (0, 1500, -1300):
        with pytest.raises(ValueError, match="non-zero shift"):
            shift_pitch(tone, bad)


def test_pitch_shifted_passage_audio_is_cached_beside_the_original(tmp_path, speech_tools, tiny_corpus):
    need_binaries("sox")
    from sqa_data.dataset import passage_audio, read_records

    record = read_records(tiny_corpus)["train"][0]
    plain = passage_audio(record, tmp_path)
    shifted = passage_audio({**record, "pitch_cents": 400}, tmp_path)
    assert shifted.shape == plain.shape and not (shifted == plain).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{record['audio_sha1']}.flac", f"{record['audio_sha1']}.pitch+400.flac"])
    assert (passage_audio({**record, "pitch_cents": 400}, tmp_path) == shifted).all()  # read back, bit-exact


def test_pretraining_hears_every_passage_again_pitch_shifted(tmp_path, speech_tools, tiny_corpus, tiny_text_bert):
    need_binaries("sox")
    import run_pretraining
    from tests.test_training import common_args

    pre = tmp_path / "pre"
    args = common_args(pre, tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--stage", "1", "--max_steps", "1", "--save_strategy", "no",
        "--config_overrides", "audio_encoder_hidden_size=8", "--preprocessing_num_workers", "2"]
    run_pretraining.main(args + ["--stage1_pitch_cents", "300", "500"])
    settings = json.loads((pre / "stage1" / "settings.json").read_text())
    assert settings["train_questions"] == 2 and settings["extra_passages"] == 1  # the one train passage, shifted
    assert len(list((tmp_path / "audio").glob("*.pitch+*.flac"))) == 1
    # Another set of shifts is another step 1: the finished one is not reused.
    with pytest.raises(ValueError, match="other settings"):
        run_pretraining.main(args + ["--stage1_pitch_cents", "-300"])
    with pytest.raises(ValueError, match="stage1_pitch_cents"):
        run_pretraining.main(args + ["--stage1_pitch_cents", "0"])
    with pytest.raises(ValueError, match="preprocessing_num_workers must be >= 1, got 0"):
        run_pretraining.main(args + ["--preprocessing_num_workers", "0"])


@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="prctl is Linux's")
def test_a_single_process_build_does_not_die_with_its_parent_shell():
    """With --num_proc 1 the recognizer is made in the main process: it must not ask for SIGTERM when its parent
    (the shell that started a background build) exits. Checked in a child process, whose flag is then read (the
    recognizer itself is stubbed: loading it is beside the point)."""
    import subprocess
    import sys

    code = ("import ctypes, sqa_data.speech as sp, sqa_data.build as m; sp.SpeechRecognizer = lambda: None\n"
            "def flag():\n    sig = ctypes.c_int(-1); ctypes.CDLL('libc.so.6').prctl(2, ctypes.byref(sig)); "
            "return sig.value\n"  # PR_GET_PDEATHSIG
            "m._init_worker(in_pool=False); print(flag()); m._init_worker(in_pool=True); print(flag())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # 0: the main process keeps running when its shell exits; 15: pool workers still die with the build (SIGTERM).
    assert out.stdout.split()[-2:] == ["0", "15"]


def test_pretraining_refuses_an_empty_speech_folder_at_argument_parsing(tmp_path):
    from run_pretraining import PretrainingArguments

    empty = tmp_path / "voices"
    (empty / "shards").mkdir(parents=True)  # made, never built
    with pytest.raises(ValueError, match=r"--stage1_extra_records '.*voices' holds no speech shards"):
        PretrainingArguments(stage1_extra_records=[str(empty)])
    with pytest.raises(ValueError, match=r"--stage1_extra_records '.*nowhere' holds no speech shards"):
        PretrainingArguments(stage1_extra_records=[str(tmp_path / "nowhere")])
    (empty / "shards" / "step1-00000.jsonl.gz").write_bytes(b"")
    assert PretrainingArguments(stage1_extra_records=[str(empty)]).stage1_extra_records == [str(empty)]
