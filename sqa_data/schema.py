"""The corpus record and row, each defined once.

A *record* is one paragraph as the builders and loaders write it to shards (`paragraph_record`); a *row* is one
question with its passage, as `sqa_data.dataset` turns records into a `datasets.DatasetDict` (`ROW_FIELDS`, from
which both the row conversion and the `datasets.Features` come).
"""

# Record fields and their defaults, in the order records are written. `qas` holds the questions, each
# {"id", "question", "answers": [{"text", "answer_start", "word_start", "word_end", "has_asr_error"[, "start_time",
# "end_time"]}]}.
RECORD_FIELDS = {
    "paragraph_id": None, "title": None, "context": None, "spoken_text": "", "voice": "", "speed": 1.0,
    "ref_words": (), "ref_char_spans": (), "ref_starts": (), "ref_ends": (), "ref_asr_correct": (),
    "asr_words": (), "asr_starts": (), "asr_ends": (), "wer": -1.0, "audio_duration": 0.0, "audio_sha1": "",
    "qas": (),
}
# Written only when given.
OPTIONAL_RECORD_FIELDS = ("audio_paths", "timings", "source")


def paragraph_record(*, ref=None, asr=None, **fields) -> dict:
    """A paragraph record with every field of `RECORD_FIELDS` (defaults for those not given). `ref` / `asr`:
    `[(word, start_s, end_s), ...]` of the aligned reference / recognised words, filling `ref_*` / `asr_*`."""
    unknown = set(fields) - set(RECORD_FIELDS) - set(OPTIONAL_RECORD_FIELDS)
    if unknown:
        raise TypeError(f"unknown record fields {sorted(unknown)}")
    for kind, timed in (("ref", ref), ("asr", asr)):
        if timed is not None:
            fields.setdefault(f"{kind}_words", [w for w, _, _ in timed])
            fields[f"{kind}_starts"] = [s for _, s, _ in timed]
            fields[f"{kind}_ends"] = [e for _, _, e in timed]
    missing = [k for k, default in RECORD_FIELDS.items() if default is None and k not in fields]
    if missing:
        raise TypeError(f"a record needs {missing}")
    record = {k: fields.get(k, list(d) if isinstance(d, tuple) else d) for k, d in RECORD_FIELDS.items()}
    record.update({k: fields[k] for k in OPTIONAL_RECORD_FIELDS if k in fields})
    return record


def failed_record(paragraph_id, title, stage, reason) -> dict:
    """A paragraph that could not be built: which stage failed and why."""
    return {"paragraph_id": paragraph_id, "title": title, "failed": {"stage": stage, "reason": reason}}


# Row fields: name -> type ("string", "float32", "bool", "strings", "floats"); `answers` is a struct of lists.
ROW_FIELDS = {
    "id": "string", "title": "string", "paragraph_id": "string", "question": "string", "context": "string",
    "answers": {"text": "strings", "answer_start": "int32s", "start_time": "floats", "end_time": "floats",
                "has_asr_error": "bools"},
    "answer_has_asr_error": "bool",
    "ref_words": "strings", "ref_starts": "floats", "ref_ends": "floats",
    "asr_words": "strings", "asr_starts": "floats", "asr_ends": "floats",
    "wer": "float32", "voice": "string", "speed": "float32", "audio_duration": "float32", "spoken_text": "string",
    "audio_sha1": "string", "audio_paths": "strings", "source": "string",
}
# Passage fields a row copies from its record, with the default for records that lack them.
ROW_PASSAGE_DEFAULTS = {"voice": "", "speed": 1.0, "spoken_text": "", "audio_sha1": "", "audio_paths": ()}


def _convert(kind, value):
    if kind == "floats":
        return [float(x) for x in value]
    if kind in ("float32",):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def question_row(record: dict, qa: dict, answers: dict, source: str) -> dict:
    """The row of one question `qa` of `record`, its `answers` already gathered as lists."""
    row = {"id": qa["id"], "question": qa["question"], "answers": answers,
           "answer_has_asr_error": answers["has_asr_error"][0] if answers["text"] else False,
           "source": record.get("source", source)}
    for name, kind in ROW_FIELDS.items():
        if name not in row:
            value = record[name] if name in record else ROW_PASSAGE_DEFAULTS[name]
            row[name] = _convert(kind, value)
    return {name: row[name] for name in ROW_FIELDS}


def features():
    """`datasets.Features` of the rows."""
    from datasets import Features, Sequence, Value

    def feature(kind):
        if isinstance(kind, dict):
            return {k: feature(v) for k, v in kind.items()}
        if kind.endswith("s") and kind != "string" and kind != "strings":
            return Sequence(Value({"floats": "float32", "int32s": "int32", "bools": "bool"}[kind]))
        if kind == "strings":
            return Sequence(Value("string"))
        return Value(kind)

    return Features({name: feature(kind) for name, kind in ROW_FIELDS.items()})
