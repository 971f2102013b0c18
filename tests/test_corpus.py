"""Corpus building: normalisation maps, answer spans, the recipe on real speech, resume after a kill, failures,
assembly into the common schema, and each loader on fixtures in its own layout."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sqa_data.dataset import passage_audio, read_records, statistics, to_dataset_dict
from sqa_data.normalize import answer_word_span, normalize, spoken_text
from sqa_data.pronounce import ipa_to_cmu
from sqa_data.recipe import asr_error_flags, span_has_asr_error, voice_and_speed
from sqa_data.speech import FLITE_VOICES, require_binary

from .conftest import need_binaries

ROOT = Path(__file__).resolve().parents[1]
SPOKEN_SQUAD_TEXT = ROOT.parent / "shared/data/spoken-squad-test/spoken_test-v1.1_42.json"


def need_speech_tools():
    need_binaries("flite", "espeak-ng")


def words_of(text):
    return " ".join(w.text for w in normalize(text))


# ----------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    "text, spoken",
    [
        ("In 1973 prices rose", "in nineteen seventy three prices rose"),
        ("the year 2015", "the year twenty fifteen"),
        ("1,234 people", "one thousand two hundred and thirty four people"),
        ("3.5 million", "three point five million"),
        ("the 22nd of May", "the twenty second of may"),
        ("US$3 per barrel", "three dollars per barrel"),
        ("£1 and $12.5 billion", "one pound and twelve point five billion dollars"),
        ("rose 45% or 4.5 %", "rose forty five percent or four point five percent"),
        ("in the 1960s", "in the nineteen sixties"),
        ("at 10:30", "at ten thirty"),
        ("R&D + tax", "r and d plus tax"),
        ("Dr. Who met Mr. Smith in St. Louis", "doctor who met mister smith in saint louis"),
        ("e.g. the U.S. army", "for example the u s army"),
        ("the NFL and the BBC's NASA show", "the n f l and the b b c's nasa show"),
        ("a 12 km road", "a twelve kilometers road"),
        ("Zürich and Québec", "zurich and quebec"),
        ("Ctenophora (/tᵻˈnɒfərə/) live", "ctenophora live"),
        ("Yuan dynasty (元朝)", "yuan dynasty"),
        ("Normandy's dukes", "normandy's dukes"),
    ],
)
def test_normalisation(text, spoken):
    assert words_of(text) == spoken


def test_every_word_maps_to_its_written_token():
    text = "The 1973 oil crisis began in October 1973, costing US$3.50 (45%)."
    words = normalize(text)
    assert [text[w.char_start : w.char_end] for w in words[:5]] == ["The", "1973", "1973", "1973", "oil"]
    assert {text[w.char_start : w.char_end] for w in words if w.text in ("three", "point", "five", "dollars")} >= {
        "US$3.50"}
    assert text[words[-1].char_start : words[-1].char_end] == "45%"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("October 1973", ["october", "nineteen", "seventy", "three"]),
        ("oil crisis", ["oil", "crisis"]),
        ("1973 oil", ["nineteen", "seventy", "three", "oil"]),
        ("US$3.50", ["three", "point", "five", "zero", "dollars"]),
        ("Octo", ["october"]),  # a partial token still selects its word
    ],
)
def test_answer_span_maps_to_spoken_words(answer, expected):
    text = "The 1973 oil crisis began in October 1973, costing US$3.50 (45%)."
    words = normalize(text)
    start = text.index(answer) if answer != "1973 oil" else 4
    first, last = answer_word_span(words, start, start + len(answer))
    assert [w.text for w in words[first : last + 1]] == expected


def test_answer_without_spoken_words_maps_to_none():
    text = "The dynasty (元朝) ruled."
    start = text.index("元朝")
    assert answer_word_span(normalize(text), start, start + 2) is None


def test_spoken_text_keeps_pauses():
    text = "Dr. Smith, the mayor, spoke. Then 3 people left"
    assert spoken_text(text, normalize(text)) == "doctor smith, the mayor, spoke. then three people left."


def test_ipa_to_cmu_phones():
    assert ipa_to_cmu("t_ˈɛ_s_l_ə") == ["T", "EH", "S", "L", "AH"]
    assert ipa_to_cmu("ˈoʊ_p_ɛ_k") == ["OW", "P", "EH", "K"]
    assert ipa_to_cmu("tʃ_ˈaɪ_n_ə") == ["CH", "AY", "N", "AH"]


# ----------------------------------------------------------------------------------------- recipe pieces
def test_asr_error_flags_by_hand():
    reference = "the cat sat on the mat".split()
    wer, correct, inserted = asr_error_flags(reference, "the cat sad on big the mat".split())
    assert wer == pytest.approx(2 / 6)
    assert correct == [True, True, False, True, True, True]
    assert inserted == [False, False, False, False, True, False]
    assert span_has_asr_error(0, 1, correct, inserted) is False  # "the cat"
    assert span_has_asr_error(1, 2, correct, inserted) is True  # "cat sat": sat was misrecognised
    assert span_has_asr_error(3, 4, correct, inserted) is True  # "on the": "big" inserted inside
    assert span_has_asr_error(4, 5, correct, inserted) is False  # the insertion sits before the span
    assert asr_error_flags(["a"], [])[0] == 1.0


def test_voice_and_speed_are_deterministic_and_varied():
    choices = [voice_and_speed(f"Article-{i}") for i in range(200)]
    assert choices == [voice_and_speed(f"Article-{i}") for i in range(200)]
    assert {v for v, _ in choices} == set(FLITE_VOICES) and len({s for _, s in choices}) == 3


def test_missing_binary_names_the_install_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match=r"`flite` is not installed: run `apt-get install -y flite`"):
        require_binary("flite", "flite")


# ----------------------------------------------------------------------------------------- building
def tiny_squad(tmp_path, contexts) -> Path:
    paragraphs = []
    for i, context in enumerate(contexts):
        parts = context.split()
        word = parts[1] if len(parts) > 1 else context
        paragraphs.append({"context": context, "qas": [{"id": f"Tiny-{i}-0", "question": "What is it?",
                                                        "answers": [{"text": word,
                                                                     "answer_start": context.index(word)}]}]})
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "Oxygen", "paragraphs": paragraphs}]}))
    return path


CONTEXTS = [
    "The river flows north through the old city.",
    "In 1973 the market fell by ten percent.",
    "元朝",  # nothing a reader would say: fails at the normalize stage
    "Fishermen built the harbour near the bridge.",
]


@pytest.mark.slow
def test_build_resumes_after_kill_and_records_failures(tmp_path):
    need_speech_tools()
    squad = tiny_squad(tmp_path, CONTEXTS)
    out = tmp_path / "corpus"
    command = [sys.executable, "-m", "sqa_data.build", "--squad_json", str(squad), "--output_dir", str(out),
               "--splits", "validation", "--chunk_size", "1", "--no_progress", "--num_proc", "2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = out / "shards" / "validation-00000.jsonl.gz"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists(), "the first shard should be finished before the kill"
    for pid in map(int, workers):  # workers die with the killed build instead of running on orphaned
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
            assert b"spawn_main" not in cmdline, f"build worker {pid} outlived the killed build"
    finished = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "shards").glob("*.jsonl.gz")}
    assert len(finished) < 4, "the kill came too late to test resuming"

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{4 - len(finished)} paragraphs to build, {len(finished)} already done" in result.stderr
    for name, (mtime, data) in finished.items():
        shard = out / "shards" / name
        assert shard.stat().st_mtime_ns == mtime and shard.read_bytes() == data, f"{name} was rewritten"
    assert not list((out / "shards").glob(".*.tmp"))
    summary = json.loads(result.stderr[result.stderr.index("\n{") + 1 :])
    assert summary["paragraphs_failed"] == (1 if "validation-00002.jsonl.gz" not in finished else 0)

    records = read_records(out)["validation"]
    assert [r["paragraph_id"] for r in records] == [f"Oxygen-{i}" for i in range(4)]
    failed = records[2]["failed"]
    assert failed["stage"] == "normalize" and "no speakable words" in failed["reason"]
    good = records[1]
    assert good["ref_words"][:5] == ["in", "nineteen", "seventy", "three", "the"]
    assert len(good["ref_starts"]) == len(good["ref_words"]) == len(good["ref_ends"])
    assert np.all(np.diff(good["ref_starts"]) >= 0) and good["ref_ends"][-1] <= good["audio_duration"]
    assert 0 <= good["wer"] <= 1.5 and good["voice"] in FLITE_VOICES

    # The compact record regenerates its audio bit for bit, and assembles into the common schema.
    audio = passage_audio(good, cache_dir=tmp_path / "cache")
    assert abs(len(audio) / 16000 - good["audio_duration"]) < 1e-3
    assert (tmp_path / "cache" / f"{good['audio_sha1']}.flac").exists()
    dataset = to_dataset_dict({"validation": records})["validation"]
    assert dataset.num_rows == 3  # the failed paragraph has no rows
    row = dataset[1]
    assert row["answers"]["text"] == ["1973"]
    word = good["qas"][0]["answers"][0]
    assert row["answers"]["start_time"][0] == pytest.approx(good["ref_starts"][word["word_start"]])
    assert row["answers"]["end_time"][0] == pytest.approx(good["ref_ends"][word["word_end"]])


def test_build_refuses_changed_settings(tmp_path):
    need_speech_tools()
    squad = tiny_squad(tmp_path, CONTEXTS[:1])
    from sqa_data.build import build

    build(squad, tmp_path / "c", splits=("validation",), max_paragraphs={"validation": 0}, chunk_size=1,
          progress=False)
    with pytest.raises(SystemExit, match=r"built with other settings .*chunk_size"):
        build(squad, tmp_path / "c", splits=("validation",), chunk_size=2, progress=False)


def test_cli_rejects_bad_arguments(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sqa_data.build", "--squad_json", str(tmp_path / "nope.json"),
                             "--output_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--squad_json" in result.stderr and "is not a file" in result.stderr
    squad = tiny_squad(tmp_path, CONTEXTS[:1])
    result = subprocess.run([sys.executable, "-m", "sqa_data.build", "--squad_json", str(squad), "--output_dir",
                             str(tmp_path / "o"), "--max_paragraphs", "train=many"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "SPLIT=N" in result.stderr


# ----------------------------------------------------------------------------------------- statistics
def test_statistics_weight_wer_by_words():
    def record(voice, wer, n, error):
        return {"title": "t", "paragraph_id": "p", "voice": voice, "wer": wer, "ref_words": ["w"] * n,
                "audio_duration": 36.0, "qas": [{"answers": [{"has_asr_error": error}, {"has_asr_error": True}]}]}

    stats = statistics({"test": [record("slt", 0.1, 100, False), record("rms", 0.4, 300, True),
                                 {"title": "t", "paragraph_id": "q", "failed": {"stage": "align", "reason": "x"}}]})
    test = stats["test"]
    assert test["paragraphs"] == 2 and test["failed_paragraphs"] == 1 and test["questions"] == 2
    assert test["wer"] == pytest.approx((10 + 120) / 400)
    assert test["wer_by_voice"] == {"rms": pytest.approx(0.4), "slt": pytest.approx(0.1)}
    assert test["answers_with_asr_errors"] == 0.5  # first answers only
    assert test["audio_hours"] == pytest.approx(0.02)


# ----------------------------------------------------------------------------------------- loaders
@pytest.fixture(scope="module")
def sentences():
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed")
    from sqa_data.speech import synthesize

    texts = ["the normans gave their name to normandy.", "it is a region in france."]
    return texts, [synthesize(t, voice="slt") for t in texts]


@pytest.mark.slow
def test_spoken_squad_loader(tmp_path, sentences):
    from sqa_data.loaders import spoken_squad_records
    from sqa_data.speech import SpeechRecognizer

    texts, audios = sentences
    context = " ".join(t.rstrip(".") for t in texts)
    squad = {"data": [{"title": "Normans", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Where is Normandy?", "answers": [{"text": "france",
                                                                   "answer_start": context.index("france")}]}]}]}]}
    (tmp_path / "spoken.json").write_text(json.dumps(squad))
    wavs = tmp_path / "wav"
    wavs.mkdir()
    for s, audio in enumerate(audios):
        sf.write(wavs / f"0_0_{s}.wav", audio, 16000)
    records = spoken_squad_records(tmp_path / "spoken.json", wavs, SpeechRecognizer())
    record = records[0]
    assert record["asr_words"] == context.split()
    assert record["audio_duration"] == pytest.approx(sum(len(a) for a in audios) / 16000, abs=1e-3)
    answer = record["qas"][0]["answers"][0]
    assert len(audios[0]) / 16000 < answer["start_time"] < answer["end_time"] <= record["audio_duration"]
    row = to_dataset_dict({"test": records})["test"][0]
    assert row["audio_paths"] == [str(wavs / "0_0_0.wav"), str(wavs / "0_0_1.wav")]
    assert len(passage_audio(row)) == sum(len(a) for a in audios)


def test_spoken_squad_loader_records_a_corrupt_wav_as_failed(tmp_path):
    from sqa_data.loaders import spoken_squad_records

    squad = {"data": [{"title": "T", "paragraphs": [{"context": "a b", "qas": []}]}]}
    (tmp_path / "spoken.json").write_text(json.dumps(squad))
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "0_0_0.wav").write_bytes(b"RIFF but not a wav")
    [record] = spoken_squad_records(tmp_path / "spoken.json", tmp_path / "wav", recognizer=None)
    assert record["failed"]["stage"] == "audio"
    assert re.search(r"could not decode audio from .*0_0_0\.wav", record["failed"]["reason"])


@pytest.mark.slow
def test_nmsqa_loader_resamples_and_keeps_answer_times(tmp_path, sentences):
    import torch
    import torchaudio
    from datasets import Dataset

    from sqa_data.loaders import nmsqa_records
    from sqa_data.speech import SpeechRecognizer

    texts, audios = sentences
    audio = np.concatenate(audios)
    audio_22k = torchaudio.functional.resample(torch.from_numpy(audio), 16000, 22050).numpy()
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "p0.wav", audio_22k, 22050)
    context = "The Normans gave their name to Normandy. It is a region in France."
    Dataset.from_list([{
        "id": "n1", "title": "Normans", "context": context, "question": "Who named Normandy?",
        "answers": {"text": ["The Normans"], "answer_start": [0], "audio_full_answer_start": [0.1],
                    "audio_full_answer_end": [0.9]},
        "content_full_audio_path": "p0.wav",
    }]).to_parquet(tmp_path / "dev.parquet")
    record = nmsqa_records(tmp_path / "dev.parquet", tmp_path / "audio", SpeechRecognizer())[0]
    assert record["source"] == "nmsqa" and record["ref_words"][:3] == ["the", "normans", "gave"]
    assert abs(record["audio_duration"] - len(audio) / 16000) < 0.01
    answer = record["qas"][0]["answers"][0]
    assert (answer["start_time"], answer["end_time"]) == (0.1, 0.9)
    assert (answer["word_start"], answer["word_end"]) == (0, 1)


@pytest.mark.slow
def test_custom_loader_with_and_without_context(tmp_path, sentences):
    from sqa_data.loaders import custom_records
    from sqa_data.speech import SpeechRecognizer

    _, audios = sentences
    sf.write(tmp_path / "a.wav", audios[0], 16000)
    corpus = {"data": [
        {"id": "with", "audio": "a.wav", "context": "The Normans gave their name to Normandy.",
         "questions": [{"id": "c1", "question": "Who?", "answers": [{"text": "The Normans", "answer_start": 0,
                                                                      "start_time": 0.1, "end_time": 0.8}]}]},
        {"id": "without", "audio": "a.wav",
         "questions": [{"id": "c2", "question": "Who?", "answers": [{"start_time": 0.1, "end_time": 0.8}]}]},
        {"id": "bad", "audio": "a.wav",
         "questions": [{"id": "c3", "question": "Who?", "answers": [{"start_time": 5.0, "end_time": 90.0}]}]},
    ]}
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    with_context, without, bad = custom_records(tmp_path / "corpus.json", SpeechRecognizer())
    assert with_context["wer"] >= 0 and with_context["ref_words"][1] == "normans"
    assert without["ref_words"] == [] and without["wer"] == -1.0 and len(without["asr_words"]) >= 4
    assert bad["failed"]["stage"] == "input" and "outside the audio" in bad["failed"]["reason"]
    rows = to_dataset_dict({"test": [with_context, without, bad]})["test"]
    assert rows.num_rows == 2 and rows[1]["answers"]["start_time"] == [pytest.approx(0.1)]


def test_spoken_squad_text_condition():
    if not SPOKEN_SQUAD_TEXT.exists():
        pytest.skip(f"{SPOKEN_SQUAD_TEXT} is not here")
    from sqa_data.loaders import spoken_squad_text_records

    records = spoken_squad_text_records(SPOKEN_SQUAD_TEXT)
    dataset = to_dataset_dict({"test": records}, source="spoken-squad-text")["test"]
    assert len(records) == 1903 and dataset.num_rows == 4929
    row = dataset[0]
    assert row["asr_starts"] == [] and row["audio_duration"] == 0.0 and row["source"] == "spoken-squad-text"
    start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
    assert row["context"][start : start + len(text)] == text


def test_read_records_reads_shards(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for name, ids in (("test-00000", ["a", "b"]), ("test-00001", ["c"]), ("train-00000", ["d"])):
        with gzip.open(shards / f"{name}.jsonl.gz", "wt") as f:
            for i in ids:
                f.write(json.dumps({"paragraph_id": i}) + "\n")
    records = read_records(tmp_path)
    assert {k: [r["paragraph_id"] for r in v] for k, v in records.items()} == {"test": ["a", "b", "c"],
                                                                                "train": ["d"]}
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nothing")


def test_audio_cache_is_safe_for_concurrent_writers(tmp_path):
    need_speech_tools()
    from concurrent.futures import ThreadPoolExecutor

    from sqa_data.recipe import audio_checksum
    from sqa_data.speech import synthesize

    audio = synthesize("a short passage for the cache.", voice="awb")
    record = {"paragraph_id": "p", "spoken_text": "a short passage for the cache.", "voice": "awb", "speed": 1.0,
              "audio_sha1": audio_checksum(audio)}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: passage_audio(record, cache_dir=tmp_path), range(8)))
    assert all(np.array_equal(r, results[0]) for r in results)
    assert [p.name for p in tmp_path.iterdir()] == [f"{record['audio_sha1']}.flac"]


def test_dataset_cli_writes_audio_in_parallel(tmp_path, tiny_corpus):
    from datasets import load_from_disk

    from sqa_data.dataset import main as dataset_main

    dataset_main(["--records", str(tiny_corpus), "--output_dir", str(tmp_path / "ds"), "--with_audio",
                  "--num_proc", "2"])
    dataset = load_from_disk(str(tmp_path / "ds"))
    for split in ("train", "validation", "test"):
        row = dataset[split][0]
        [path] = row["audio_paths"]
        audio, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and abs(len(audio) / rate - row["audio_duration"]) < 0.01
        # the saved FLAC is the regenerated flite audio (16-bit), not something else
        np.testing.assert_allclose(audio, passage_audio({**row, "audio_paths": None}), atol=1 / 32768)
    # Rerun into the same folder: the cached passages are kept as they are, not synthesised or rewritten.
    flacs = sorted((tmp_path / "ds" / "audio").glob("*.flac"))
    stamps = [f.stat().st_mtime_ns for f in flacs]
    dataset_main(["--records", str(tiny_corpus), "--output_dir", str(tmp_path / "ds"), "--with_audio"])
    assert [f.stat().st_mtime_ns for f in flacs] == stamps and len(flacs) == 3
    assert load_from_disk(str(tmp_path / "ds"))["test"][0]["audio_paths"] == dataset["test"][0]["audio_paths"]
    with pytest.raises(SystemExit):
        dataset_main(["--records", str(tiny_corpus), "--output_dir", str(tmp_path / "x"), "--num_proc", "0"])


def test_dataset_cli_rebuilds_only_when_the_records_change(tmp_path, tiny_corpus, capsys):
    """`make benchmark` calls the dataset CLI every time: a saved dataset is kept while its records are the same, and
    rebuilt (never silently reused) once they change, e.g. a train split built further."""
    from datasets import load_from_disk

    from sqa_data.dataset import SOURCE_FILE, main as dataset_main

    records = tmp_path / "records"
    shutil.copytree(tiny_corpus, records)
    out = tmp_path / "ds"
    args = ["--records", str(records), "--output_dir", str(out), "--with_audio"]
    dataset_main(args)
    assert json.loads((out / SOURCE_FILE).read_text())["with_audio"] is True
    arrow = sorted(out.glob("*/*.arrow"))
    stamps = [f.stat().st_mtime_ns for f in arrow]
    capsys.readouterr()
    dataset_main(args)
    assert "is up to date" in capsys.readouterr().err
    assert [f.stat().st_mtime_ns for f in arrow] == stamps
    # The train split grows by a shard (a copy of the train paragraph under a new id): the dataset is rebuilt.
    [train_shard] = sorted((records / "shards").glob("train-*.jsonl.gz"))
    with gzip.open(train_shard, "rt") as f:
        record = json.loads(f.readline())
    record["paragraph_id"] += "-again"
    for qa in record["qas"]:
        qa["id"] += "-again"
    with gzip.open(records / "shards" / "train-99999.jsonl.gz", "wt") as f:
        f.write(json.dumps(record) + "\n")
    before = load_from_disk(str(out))["train"].num_rows
    dataset_main(args)
    assert "rebuilding it" in capsys.readouterr().err
    assert load_from_disk(str(out))["train"].num_rows == 2 * before
    # The same records without --with_audio are another dataset too.
    dataset_main(args[:-1])
    assert "rebuilding it" in capsys.readouterr().err
    assert load_from_disk(str(out))["train"][0]["audio_paths"] == []


def test_one_record_definition():
    """Every record comes from sqa_data.schema.paragraph_record: all fields, in one order, defaults filled, unknown
    fields refused; the row schema and the datasets Features come from one table."""
    from sqa_data.schema import RECORD_FIELDS, ROW_FIELDS, features, paragraph_record

    record = paragraph_record(paragraph_id="p", title="t", context="c", asr=[("a", 0.0, 0.5), ("b", 0.5, 1.0)],
                              qas=[], source="custom")
    assert list(record)[: len(RECORD_FIELDS)] == list(RECORD_FIELDS) and record["source"] == "custom"
    assert record["asr_words"] == ["a", "b"] and record["asr_ends"] == [0.5, 1.0] and record["ref_words"] == []
    with pytest.raises(TypeError, match="unknown record fields"):
        paragraph_record(paragraph_id="p", title="t", context="c", colour="red")
    with pytest.raises(TypeError, match="needs"):
        paragraph_record(title="t", context="c")
    assert list(features()) == list(ROW_FIELDS)


def test_nmsqa_loader_refuses_repeated_ids_and_missing_times_and_fails_bad_spans(tmp_path, sentences):
    from datasets import Dataset

    from sqa_data.loaders import nmsqa_records

    _, audios = sentences
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "p0.wav", audios[0], 16000)

    def table(*rows):
        Dataset.from_list([{"id": i, "title": "T", "context": "The Normans gave their name to Normandy.",
                            "question": "Who?", "answers": {"text": ["The Normans"], "answer_start": [0],
                                                            "audio_full_answer_start": s, "audio_full_answer_end": e},
                            "content_full_audio_path": "p0.wav"} for i, s, e in rows]).to_parquet(tmp_path / "t.parquet")
        return tmp_path / "t.parquet"

    class NoRecognition:
        def __getattr__(self, name):
            raise AssertionError("recognition ran before the table was checked")

    with pytest.raises(ValueError, match=r"question id 'n1' appears twice"):
        nmsqa_records(table(("n1", [0.1], [0.9]), ("n1", [0.2], [0.8])), tmp_path / "audio", NoRecognition())
    with pytest.raises(ValueError, match=r"question 'n2' has 1 answers but 0 audio start and 0 end times"):
        nmsqa_records(table(("n1", [0.1], [0.9]), ("n2", [], [])), tmp_path / "audio", NoRecognition())
    for start, end in ((50.0, 40.0), (0.5, 99.0)):
        (record,) = nmsqa_records(table(("n1", [start], [end])), tmp_path / "audio", NoRecognition())
        assert "failed" in record and f"answer time ({start}, {end}) s is not a span inside the audio" in str(record)


@pytest.mark.parametrize("corpus, message", [
    ("not json {", r"is not JSON"),
    ([{"audio": "a.wav"}], r"expected an object with a 'data' list of passages, got list"),
    ({"passages": []}, r"expected an object with a 'data' list of passages, got dict without data"),
    ({"data": [{"questions": [{}]}]}, r"data\[0\]: 'audio' must be the path of its audio file"),
    ({"data": [{"audio": "../x.wav", "questions": []}]}, r"audio '../x.wav' lies outside"),
    ({"data": [{"audio": "/etc/x.wav", "questions": []}]}, r"audio '/etc/x.wav' lies outside"),
    ({"data": [{"audio": "a.wav", "questions": []}]}, r"'questions' must be a non-empty list"),
    ({"data": [{"audio": "a.wav", "questions": [{"id": 1, "question": "Who?"}]}]}, r"questions\[0\]: expected"),
    ({"data": [{"audio": "a.wav", "questions": [{"id": 1, "question": "Who?", "answers": [{"start_time": "0.1",
                                                                                          "end_time": 1}]}]}]},
     r"answers\[0\]: start_time and end_time must be numbers"),
    ({"data": [{"audio": "a.wav", "questions": [{"id": 1, "question": "Who?", "answers": [{"start_time": None,
                                                                                          "end_time": 1}]}]}]},
     r"start_time and end_time must be numbers"),
    ({"data": [{"id": "p", "audio": "a.wav", "questions": [{"id": 1, "question": "?", "answers": [
        {"start_time": 0, "end_time": 1}]}]}, {"id": "p", "audio": "a.wav", "questions": []}]}, r"passage id 'p' appears twice"),
    ({"data": [{"id": "p", "audio": "a.wav", "questions": [{"id": 1, "question": "?", "answers": [
        {"start_time": 0, "end_time": 1}]}, {"id": 1, "question": "?", "answers": [{"start_time": 0, "end_time": 1}]}]}]},
     r"question id 1 appears twice"),
])
def test_custom_loader_refuses_malformed_corpora_before_reading_audio(tmp_path, corpus, message):
    from sqa_data.loaders import custom_records

    path = tmp_path / "corpus.json"
    path.write_text(corpus if isinstance(corpus, str) else json.dumps(corpus))

    class NoRecognition:
        def __getattr__(self, name):
            raise AssertionError("recognition ran before the corpus was checked")

    with pytest.raises(ValueError, match=message):
        custom_records(path, NoRecognition())
