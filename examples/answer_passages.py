"""A trained SpeechBERT at work: it answers the questions of real spoken passages, printing each question, its
answer with the time span, the gold answer, and the overall EM / F1 / AOS.

Usage:
    python examples/answer_passages.py [--model checkpoints/speechbert-segmenter] [--records data/embedded]
        [--split test] [--segments asr|model] [--max_passages N]

The passages are the embedded corpus's test split by default (10 paragraphs, 68 questions, held out from the
benchmark's training: they are in its test split), their audio synthesised again with flite from the committed
records. `--segments asr` (the default) gives the model pocketsphinx's word times and words as the corpus recorded
them, so each answer is those words; `--segments model` uses the checkpoint's own word segmenter (no recognition) and
reads the answer's words back from its audio codes (`answer_from_audio`). Scored with the project's metric module as
`run_sqa.py` scores (`sqa_train.evaluation`); through the public pipeline, so figures can differ from `run_sqa.py`'s
by a few tenths.
"""

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "checkpoints" / "speechbert-segmenter"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a SpeechBERT QA folder or Hub id")
    parser.add_argument("--records", default=str(ROOT / "data" / "embedded"), help="a corpus's records folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--segments", choices=("asr", "model"), default="asr")
    parser.add_argument("--max_passages", type=int, default=None, help="only the first N passages")
    parser.add_argument("--audio_cache_dir", default=None, help="keep the synthesised passages here (FLAC)")
    args = parser.parse_args(argv)
    if args.max_passages is not None and args.max_passages < 1:
        parser.error(f"--max_passages {args.max_passages}: expected a positive number of passages")
    model = Path(args.model)
    if args.model == str(DEFAULT_MODEL) and not (model / "config.json").is_file():
        parser.error(f"{model} is not shipped yet: `make benchmark` ships it (checkpoints/README.md), or pass "
                     "--model with a trained SpeechBERT QA folder")
    from sqa_train.models import check_model_reference

    try:
        check_model_reference("--model", args.model)
    except ValueError as error:
        parser.error(str(error))
    if not Path(args.records).is_dir():
        parser.error(f"--records {args.records}: no such folder")
    return args


def main(argv=None):
    args = parse_args(argv)
    import evaluate
    from transformers import pipeline

    from sqa_data.dataset import passage_audio, question_rows, read_records
    from sqa_train.evaluation import METRIC_PATH, score

    started = time.perf_counter()
    records = read_records(args.records)
    if args.split not in records:
        raise SystemExit(f"--split {args.split}: {args.records} has {sorted(records)}")
    records = [r for r in records[args.split] if "failed" not in r][: args.max_passages]
    qa = pipeline(model=args.model, trust_remote_code=True)
    if args.segments == "model" and not getattr(qa.model.config, "word_segmenter", False):
        raise SystemExit(f"--segments model: {args.model} has no word segmenter (config.word_segmenter)")
    loaded = time.perf_counter()
    rows, predictions = [], {}
    for record in records:
        passage = question_rows(record)
        audio = passage_audio(record, args.audio_cache_dir)
        questions = [row["question"] for row in passage]
        if args.segments == "asr":
            found = qa(audio, sampling_rate=16000, question=questions, words=record["asr_words"],
                       word_segments=list(zip(record["asr_starts"], record["asr_ends"])))
        else:
            found = qa(audio, sampling_rate=16000, question=questions, segmenter="model", answer_from_audio=True)
        found = found if isinstance(found, list) else [found]
        print(f"\n{record['title'].replace('_', ' ')} ({record['paragraph_id']}, voice {record['voice']}, "
              f"{len(audio) / 16000:.0f} s, ASR WER {record['wer']:.0%})")
        for row, answer in zip(passage, found):
            text = answer["answer"] if args.segments == "asr" else answer["answer_from_audio"]
            predictions[len(rows)] = {"prediction_text": text or "", "start_time": answer["start"],
                                      "end_time": answer["end"]}
            rows.append(row)
            gold = row["answers"]
            print(f"  Q: {row['question']}\n     answer: {text!r} at {answer['start']:.2f}-{answer['end']:.2f} s"
                  f"   gold: {gold['text'][0]!r} at {gold['start_time'][0]:.2f}-{gold['end_time'][0]:.2f} s")
    metric = evaluate.load(METRIC_PATH)
    result = score(metric, rows, predictions, [0.1, 0.2, 0.3, 0.4], per_voice=False)["overall"]
    where = "pocketsphinx's word times and words" if args.segments == "asr" else "its own word segments, no ASR"
    print(f"\n{len(rows)} questions, {len(records)} passages ({args.records}, {args.split}), at {where}: "
          f"EM {result['exact_match']:.1f}, F1 {result['f1']:.1f}, AOS {result['aos']:.1f}  "
          f"(model loaded in {loaded - started:.1f} s, answered in {time.perf_counter() - loaded:.1f} s)")
    return result


if __name__ == "__main__":
    main()
