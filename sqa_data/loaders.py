"""Load real spoken QA corpora into the records `sqa_data.dataset` turns into the common schema.

Usage:
    python -m sqa_data.loaders spoken-squad --json spoken_test-v1.1.json --audio_dir wav/ --output_dir OUT
    python -m sqa_data.loaders spoken-squad-text --json ../shared/data/spoken-squad-test/spoken_test-v1.1_42.json \
        --output_dir OUT
    python -m sqa_data.loaders nmsqa --table dev.parquet --audio_root nmsqa_audio/ --output_dir OUT
    python -m sqa_data.loaders custom --json my_corpus.json --output_dir OUT

- Spoken SQuAD (Li et al., 2018): SQuAD-format JSON whose `context` is the ASR transcript, and one wav per sentence,
  `TopicIndex_ParagraphIndex_SentenceIndex.wav`, concatenated per paragraph. The transcript is force-aligned to the
  audio: its words and times are the ASR side; answers (spans of the transcript) get their times from it.
- Spoken SQuAD text only: the transcripts without audio (the cascade's text condition): ASR words, no times.
- NMSQA (Lin et al., 2022): parquet or CSV with `context`, `question`, `answers` (`text`, `answer_start`,
  `audio_full_answer_start`, `audio_full_answer_end`) and `content_full_audio_path`; pocketsphinx recognises and aligns
  each passage, the answer times are NMSQA's own.
- Custom: `{"data": [{"audio": "a.wav", "context": "...", "id": "...", "questions": [{"id", "question",
  "answers": [{"text", "start_time", "end_time"}]}]}]}`; `context` is optional (without it there is no reference and
  no WER). Paths are relative to the JSON file.
"""

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .normalize import answer_word_span, normalize
from .recipe import StageError, Timer, _run_stage, audio_checksum, score_paragraph
from .schema import failed_record, paragraph_record
from .speech import read_audio

_SENTENCE_WAV = re.compile(r"^(\d+)_(\d+)_(\d+)\.wav$")


# ------------------------------------------------------------------------------------------- Spoken SQuAD
def spoken_squad_records(json_path, audio_dir, recognizer) -> list[dict]:
    squad = json.loads(Path(json_path).read_text())
    sentences = defaultdict(list)
    for wav in Path(audio_dir).glob("*.wav"):
        match = _SENTENCE_WAV.match(wav.name)
        if match:
            topic, paragraph, sentence = map(int, match.groups())
            sentences[(topic, paragraph)].append((sentence, wav))
    if not sentences:
        raise FileNotFoundError(f"{audio_dir} has no TopicIndex_ParagraphIndex_SentenceIndex.wav files")
    records = []
    for t, article in enumerate(squad["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            paragraph_id = f"{article['title']}-{p}"
            files = [wav for _, wav in sorted(sentences.get((t, p), []))]
            if not files:
                records.append(failed_record(paragraph_id, article["title"], "audio", f"no wav files {t}_{p}_*.wav"))
                continue
            try:
                audio = np.concatenate([read_audio(f) for f in files])
                records.append(_transcript_record(paragraph_id, article["title"], paragraph, audio, recognizer,
                                                  audio_paths=[str(f) for f in files]))
            except (StageError, ValueError) as error:
                stage = getattr(error, "stage", "audio")
                records.append(failed_record(paragraph_id, article["title"], stage, getattr(error, "reason", str(error))))
    return records


def _transcript_record(paragraph_id, title, paragraph, audio, recognizer, audio_paths):
    """A paragraph whose text IS the ASR transcript: align it for word times; answers are transcript spans."""
    timer = Timer()
    words = normalize(paragraph["context"])
    aligned = _run_stage("align", recognizer.align, audio, [w.text for w in words])
    timer.lap("align")
    qas = []
    for qa in paragraph["qas"]:
        answers = []
        for answer in qa["answers"]:
            span = answer_word_span(words, answer["answer_start"], answer["answer_start"] + len(answer["text"]))
            answers.append({
                "text": answer["text"], "answer_start": answer["answer_start"],
                "word_start": -1, "word_end": -1, "has_asr_error": None,
                "start_time": aligned[span[0]][1] if span else -1.0,
                "end_time": aligned[span[1]][2] if span else -1.0,
            })
        qas.append({"id": qa["id"], "question": qa["question"], "answers": answers})
    return paragraph_record(paragraph_id=paragraph_id, title=title, context=paragraph["context"], asr=aligned,
                            audio_duration=round(len(audio) / 16000, 4), audio_sha1=audio_checksum(audio),
                            audio_paths=audio_paths, qas=qas, timings=timer.timings, source="spoken-squad")


def spoken_squad_text_records(json_path) -> list[dict]:
    """The Spoken SQuAD transcripts as a text-only condition: ASR words without times, answers as given."""
    squad = json.loads(Path(json_path).read_text())
    records = []
    for article in squad["data"]:
        for p, paragraph in enumerate(article["paragraphs"]):
            qas = [{"id": qa["id"], "question": qa["question"], "answers": [
                {"text": a["text"], "answer_start": a["answer_start"], "word_start": -1, "word_end": -1,
                 "has_asr_error": None, "start_time": -1.0, "end_time": -1.0} for a in qa["answers"]]}
                for qa in paragraph["qas"]]
            records.append(paragraph_record(
                paragraph_id=f"{article['title']}-{p}", title=article["title"], context=paragraph["context"],
                asr_words=[w.text for w in normalize(paragraph["context"])], qas=qas, source="spoken-squad-text"))
    return records


# ------------------------------------------------------------------------------------------- NMSQA
def _read_table(path):
    from datasets import load_dataset

    kind = {".parquet": "parquet", ".csv": "csv"}.get(Path(path).suffix)
    if kind is None:
        raise ValueError(f"{path}: expected a .parquet or .csv table")
    return load_dataset(kind, data_files=str(path), split="train")


def nmsqa_records(table_path, audio_root, recognizer) -> list[dict]:
    table = _read_table(table_path)
    required = {"id", "context", "question", "answers", "content_full_audio_path"}
    missing = required - set(table.column_names)
    if missing:
        raise ValueError(f"{table_path} lacks NMSQA columns {sorted(missing)}")
    passages, seen = {}, set()
    for row in table:
        answers = row["answers"]
        if isinstance(answers, str):  # CSV stores the struct as JSON text
            answers = json.loads(answers)
        # Checked before any audio is read: a repeated id used to take another question's times silently, and a
        # missing time was filled in from forced alignment.
        if row["id"] in seen:
            raise ValueError(f"{table_path}: question id {row['id']!r} appears twice")
        seen.add(row["id"])
        texts = answers.get("text") or []
        times = [answers.get("audio_full_answer_start") or [], answers.get("audio_full_answer_end") or []]
        if not len(texts) == len(times[0]) == len(times[1]):
            raise ValueError(f"{table_path}: question {row['id']!r} has {len(texts)} answers but "
                             f"{len(times[0])} audio start and {len(times[1])} end times")
        key = row["content_full_audio_path"]
        passage = passages.setdefault(key, {"paragraph_id": Path(key).stem, "title": row.get("title") or "",
                                            "context": row["context"], "qas": [], "times": {}})
        passage["qas"].append({"id": row["id"], "question": row["question"], "answers": [
            {"text": t, "answer_start": int(s)} for t, s in zip(answers["text"], answers["answer_start"])]})
        passage["times"][row["id"]] = list(zip(answers["audio_full_answer_start"], answers["audio_full_answer_end"]))
    records = []
    for key, passage in passages.items():
        try:
            audio = read_audio(Path(audio_root) / key)
            _check_answer_times(passage["times"], len(audio) / 16000)
            record = score_paragraph(passage, normalize(passage["context"]), audio, recognizer)
        except (StageError, ValueError) as error:
            records.append(failed_record(passage["paragraph_id"], passage["title"], getattr(error, "stage", "audio"),
                                   getattr(error, "reason", str(error))))
            continue
        for qa in record["qas"]:
            for answer, (start, end) in zip(qa["answers"], passage["times"][qa["id"]]):
                answer["start_time"], answer["end_time"] = float(start), float(end)
        record.update(audio_paths=[str(Path(audio_root) / key)], source="nmsqa")
        records.append(record)
    return records


def _check_answer_times(times: dict, duration: float):
    """A `ValueError` naming the first question whose answer time is not a span inside the audio (its passage is
    then recorded as failed, as the custom loader does)."""
    for question, spans in times.items():
        for start, end in spans:
            if not (isinstance(start, (int, float)) and isinstance(end, (int, float))
                    and 0 <= start < end <= duration + 0.01):
                raise ValueError(f"question {question}: answer time ({start}, {end}) s is not a span inside the audio "
                                 f"(0, {duration:.2f}) s")


# ------------------------------------------------------------------------------------------- custom
def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_custom_corpus(json_path) -> list[dict]:
    """The `data` items of a custom corpus file, or a `ValueError` naming the first item or field that is not as
    documented (sqa_data/README.md), before any audio is read: not JSON, not an object with a `data` list, an item
    without `audio` / `questions`, audio outside the file's folder (absolute or `..`), repeated paragraph or question
    ids, a question without text or answers, answer times that are not numbers."""
    json_path = Path(json_path)
    try:
        corpus = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_path} is not JSON ({error})") from None
    if not isinstance(corpus, dict) or not isinstance(corpus.get("data"), list):
        raise ValueError(f"{json_path}: expected an object with a 'data' list of passages, got "
                         f"{type(corpus).__name__}{' without data' if isinstance(corpus, dict) else ''}")
    paragraphs, questions = set(), set()
    for i, item in enumerate(corpus["data"]):
        where = f"{json_path}: data[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object, got {type(item).__name__}")
        paragraph_id = str(item.get("id", i))
        if paragraph_id in paragraphs:
            raise ValueError(f"{where}: passage id {paragraph_id!r} appears twice")
        paragraphs.add(paragraph_id)
        audio = item.get("audio")
        if not isinstance(audio, str) or not audio:
            raise ValueError(f"{where}: 'audio' must be the path of its audio file, relative to {json_path.parent}")
        if Path(audio).is_absolute() or ".." in Path(audio).parts:
            raise ValueError(f"{where}: audio {audio!r} lies outside {json_path.parent}: give a path inside it")
        if not isinstance(item.get("questions"), list) or not item["questions"]:
            raise ValueError(f"{where}: 'questions' must be a non-empty list")
        for j, question in enumerate(item["questions"]):
            at = f"{where}.questions[{j}]"
            if not isinstance(question, dict) or not isinstance(question.get("question"), str) \
                    or "id" not in question or not isinstance(question.get("answers"), list) or not question["answers"]:
                raise ValueError(f"{at}: expected {{'id', 'question': text, 'answers': [...]}}")
            if str(question["id"]) in questions:
                raise ValueError(f"{at}: question id {question['id']!r} appears twice")
            questions.add(str(question["id"]))
            for k, answer in enumerate(question["answers"]):
                if not isinstance(answer, dict) or not _number(answer.get("start_time")) \
                        or not _number(answer.get("end_time")):
                    raise ValueError(f"{at}.answers[{k}]: start_time and end_time must be numbers (seconds), got "
                                     f"{answer!r}")
    return corpus["data"]


def custom_records(json_path, recognizer) -> list[dict]:
    json_path = Path(json_path)
    items = check_custom_corpus(json_path)
    records = []
    for i, item in enumerate(items):
        paragraph_id, title = str(item.get("id", i)), item.get("title", "")
        qas = [{"id": q["id"], "question": q["question"],
                "answers": [{"text": a.get("text", ""), "answer_start": a.get("answer_start", -1)}
                            for a in q["answers"]]} for q in item["questions"]]
        try:
            audio_path = json_path.parent / item["audio"]
            audio = read_audio(audio_path)
            duration = len(audio) / 16000
            for q in item["questions"]:
                for a in q["answers"]:
                    if not 0 <= a["start_time"] < a["end_time"] <= duration + 0.01:
                        raise ValueError(f"question {q['id']}: answer time ({a['start_time']}, {a['end_time']}) s "
                                         f"outside the audio (0, {duration:.2f}) s")
            if item.get("context"):
                paragraph = {"paragraph_id": paragraph_id, "title": title, "context": item["context"], "qas": qas}
                record = score_paragraph(paragraph, normalize(item["context"]), audio, recognizer)
            else:
                asr = _run_stage("recognize", recognizer.recognize, audio)
                record = paragraph_record(
                    paragraph_id=paragraph_id, title=title, context=" ".join(w for w, _, _ in asr), asr=asr,
                    audio_duration=round(duration, 4), audio_sha1=audio_checksum(audio),
                    qas=[{**qa, "answers": [{**a, "word_start": -1, "word_end": -1, "has_asr_error": None}
                                            for a in qa["answers"]]} for qa in qas])
        except (StageError, ValueError, KeyError) as error:
            records.append(failed_record(paragraph_id, title, getattr(error, "stage", "input"),
                                   getattr(error, "reason", str(error))))
            continue
        for qa, q in zip(record["qas"], item["questions"]):
            for answer, given in zip(qa["answers"], q["answers"]):
                answer["start_time"], answer["end_time"] = float(given["start_time"]), float(given["end_time"])
        record.update(audio_paths=[str(audio_path)], source="custom")
        records.append(record)
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="corpus", required=True)
    p = sub.add_parser("spoken-squad", help="Spoken SQuAD JSON + per-sentence wavs")
    p.add_argument("--json", required=True)
    p.add_argument("--audio_dir", required=True)
    p = sub.add_parser("spoken-squad-text", help="Spoken SQuAD transcripts only (no audio)")
    p.add_argument("--json", required=True)
    p = sub.add_parser("nmsqa", help="NMSQA parquet/CSV + audio folder")
    p.add_argument("--table", required=True)
    p.add_argument("--audio_root", required=True)
    p = sub.add_parser("custom", help="your wavs + a JSON of questions and answer times")
    p.add_argument("--json", required=True)
    for p in sub.choices.values():
        p.add_argument("--output_dir", required=True, help="save_to_disk folder of the DatasetDict")
        p.add_argument("--split", default="test", help="name of the split the rows go to")
    args = parser.parse_args(argv)
    from .dataset import statistics, statistics_markdown, to_dataset_dict
    from .speech import SpeechRecognizer

    try:
        if args.corpus == "spoken-squad-text":
            records = spoken_squad_text_records(args.json)
        elif args.corpus == "spoken-squad":
            records = spoken_squad_records(args.json, args.audio_dir, SpeechRecognizer())
        elif args.corpus == "nmsqa":
            records = nmsqa_records(args.table, args.audio_root, SpeechRecognizer())
        else:
            records = custom_records(args.json, SpeechRecognizer())
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        parser.exit(2, f"error: {error}\n")
    dataset = to_dataset_dict({args.split: records}, source=args.corpus)
    dataset.save_to_disk(args.output_dir)
    failed = sum("failed" in r for r in records)
    print(f"{len(records) - failed} passages, {failed} failed, {dataset[args.split].num_rows} questions "
          f"-> {args.output_dir}")
    if args.corpus != "spoken-squad-text":
        print(statistics_markdown(statistics({args.split: records})))


if __name__ == "__main__":
    main()
