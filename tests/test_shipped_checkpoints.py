"""The checkpoints shipped in `checkpoints/` (`sqa_train.shipped`): each one's files and weights match its manifest,
all of them fit the 250 MB budget, and each one, restored and loaded in a fresh process from its own copy of the Hub
code (the repository's packages unimportable there), gives the outputs pinned in `tests/fixtures/shipped/` on
committed test passages (audio synthesised again from their records): a change to `speechbert/` that breaks a
shipped model fails here.

`python tests/test_shipped_checkpoints.py --pin NAME` writes a checkpoint's pinned outputs (after shipping it, or
replacing it: CONTRIBUTING.md)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sqa_train import shipped

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"
PINNED = ROOT / "tests" / "fixtures" / "shipped"
BUDGET_BYTES = 250 * 10**6
# Committed test passages the outputs are pinned on: the benchmark corpus's two shortest test paragraphs.
RECORDS = ROOT / "data" / "flite-squad"
PASSAGES = 2
# Nearest pieces and answer spans may flip on a near tie from one CPU to another; a broken model agrees on far fewer.
MIN_PIECE_AGREEMENT = 0.95
MIN_SPAN_AGREEMENT = 0.9
NAMES = sorted(p.parent.name for p in CHECKPOINTS.glob(f"*/{shipped.MANIFEST}"))

CHILD = r"""
import json, sys
sys.modules.update(speechbert=None, sqa_train=None, sqa_data=None)  # the checkpoint's own code, not the repository's
import numpy as np, torch
from transformers import AutoConfig, AutoModelForPreTraining, pipeline
from transformers.dynamic_module_utils import get_class_from_dynamic_module

folder, inputs = sys.argv[1], json.loads(open(sys.argv[2]).read())
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
kind = config.architectures[0]
out = {"kind": kind, "module": type(config).__module__.split(".")[0], "passages": []}
if kind == "SpeechBertForPreTraining":
    model = AutoModelForPreTraining.from_pretrained(folder, trust_remote_code=True).eval()
    extractor_class = get_class_from_dynamic_module("feature_extraction_speechbert.SpeechBertFeatureExtractor", folder)
    extractor = extractor_class(**config.feature_extractor_kwargs())
    out["dtype"] = str(model.dtype)
    for passage in inputs:
        audio = np.load(passage["audio"])
        features = extractor(audio, passage["segments"], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            codes = model.bert.encode_audio(features["audio_features"], features["audio_feature_lengths"])
            pieces = model.bert.nearest_pieces(codes)
        out["passages"].append({"id": passage["id"], "pieces": pieces.tolist()})
elif kind in ("SpeechBertForQuestionAnswering", "BertForQuestionAnswering"):
    # The checkpoint's own spoken QA pipeline (SpeechBERT's, or the cascade's), at the corpus's ASR words and times.
    qa = pipeline(model=folder, trust_remote_code=True)
    out["dtype"], out["module"] = str(qa.model.dtype), type(qa).__module__.split(".")[0]
    for passage in inputs:
        answers = qa(np.load(passage["audio"]), question=passage["questions"], sampling_rate=16000,
                     words=passage["asr_words"], word_segments=passage["asr_segments"])
        out["passages"].append({"id": passage["id"], "spans": [[a["segment_start"], a["segment_end"]] for a in answers],
                                "answers": [a["answer"] for a in answers]})
else:
    raise SystemExit(f"no pinned check for a {kind} checkpoint yet")
print("RESULT " + json.dumps(out))
"""


def passages(cache_dir) -> list[dict]:
    """The pinned passages: audio regenerated from the committed records (flite), reference word times."""
    from sqa_data.dataset import passage_audio, read_records

    records = [r for r in read_records(RECORDS)["test"] if "failed" not in r]
    records = sorted(records, key=lambda r: (len(r["ref_starts"]), r["paragraph_id"]))[:PASSAGES]
    found = []
    for record in records:
        path = Path(cache_dir) / f"{record['paragraph_id']}.npy"
        np.save(path, passage_audio(record))
        found.append({"id": record["paragraph_id"], "audio": str(path),
                      "segments": [[s, e] for s, e in zip(record["ref_starts"], record["ref_ends"])],
                      "questions": [qa["question"] for qa in record["qas"]], "asr_words": record["asr_words"],
                      "asr_segments": [[s, e] for s, e in zip(record["asr_starts"], record["asr_ends"])]})
    return found


def outputs_of(name, scratch, code="own") -> dict:
    """Restore checkpoint `name` into `scratch` and run it in a fresh process on the pinned passages, with the Hub
    code it was shipped with (`code="own"`: what a Hub user runs) or with the repository's `speechbert/` as it is
    now (`"current"`: what a re-save would ship, and what a change to the Hub code must not break)."""
    import shutil

    scratch = Path(scratch)
    folder = shipped.restore(CHECKPOINTS / name, scratch / "step")
    if code == "current":
        for source in (ROOT / "speechbert").glob("*.py"):
            if source.name != "__init__.py":
                shutil.copy2(source, folder / source.name)
    (scratch / "passages.json").write_text(json.dumps(passages(scratch)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(scratch / "hf_home"))
    result = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(scratch / "passages.json")],
                            cwd=scratch, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_the_shipped_checkpoints_fit_the_budget():
    sizes = {p.relative_to(CHECKPOINTS).as_posix(): p.stat().st_size for p in CHECKPOINTS.rglob("*") if p.is_file()}
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    assert total <= BUDGET_BYTES, f"checkpoints/ holds {total / 1e6:.1f} MB, over the 250 MB budget: {largest}"


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_checkpoint_matches_its_manifest(name):
    manifest = shipped.verify(CHECKPOINTS / name)
    assert manifest["name"] == name
    settings = json.loads((CHECKPOINTS / name / "settings.json").read_text())
    assert settings["stage"] in manifest["stage"]  # the step the fingerprint describes is the one shipped
    card = (CHECKPOINTS / name / "README.md").read_text()
    assert card.startswith("---\n") and "license: apache-2.0" in card and "CC BY-SA 4.0" in card


@pytest.mark.slow
@pytest.mark.parametrize("code", ["own", "current"])
@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_checkpoint_loads_in_a_fresh_process_and_gives_its_pinned_outputs(name, code, tmp_path):
    from .conftest import need_binaries

    need_binaries("flite")
    pinned_path = PINNED / f"{name}.json"
    assert pinned_path.is_file(), f"no pinned outputs for {name}: python tests/test_shipped_checkpoints.py --pin {name}"
    pinned = json.loads(pinned_path.read_text())
    found = outputs_of(name, tmp_path, code)
    assert found["module"] == "transformers_modules", "the checkpoint's copy of the Hub code must be what runs"
    assert found["kind"] == pinned["kind"]
    assert found.get("dtype") == pinned.get("dtype")
    assert [p["id"] for p in found["passages"]] == [p["id"] for p in pinned["passages"]]
    for new, old in zip(found["passages"], pinned["passages"]):
        if "pieces" in old:
            assert len(new["pieces"]) == len(old["pieces"])
            agree = np.mean(np.array(new["pieces"]) == np.array(old["pieces"]))
            assert agree >= MIN_PIECE_AGREEMENT, f"{name}, {old['id']}: {agree:.1%} of the pinned pieces"
        if "spans" in old:
            agree = np.mean([a == b for a, b in zip(new["spans"], old["spans"])])
            assert len(new["spans"]) == len(old["spans"]) and agree >= MIN_SPAN_AGREEMENT, \
                f"{name}, {old['id']}: {agree:.1%} of the pinned answer spans"


def main():
    parser = argparse.ArgumentParser(description="Pin a shipped checkpoint's outputs on the test passages.")
    parser.add_argument("--pin", nargs="+", required=True, metavar="NAME", choices=NAMES)
    args = parser.parse_args()
    PINNED.mkdir(parents=True, exist_ok=True)
    for name in args.pin:
        with tempfile.TemporaryDirectory() as scratch:
            found = outputs_of(name, scratch)
        found.pop("module")
        (PINNED / f"{name}.json").write_text(json.dumps(found, indent=1) + "\n")
        print(f"pinned {name}: {PINNED / f'{name}.json'}")


if __name__ == "__main__":
    main()
