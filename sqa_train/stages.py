"""Training steps that resume and that are never silently reused: checkpoints to resume from, and the settings
fingerprint a finished step is recognised by (`run_pretraining.py`'s steps, `run_segmenter.py`, each system of
`run_sqa.py`).

A step folder holds `settings.json` (everything that decides what the step produces) as soon as it starts, and `DONE`
when it has finished. A rerun with the same settings resumes or skips it; with other settings it is refused, naming
what changed, instead of reusing weights made another way.
"""

import hashlib
import json
import logging
import math
import os
from pathlib import Path

from transformers import TrainingArguments

logger = logging.getLogger(__name__)


def last_checkpoint(output_dir):
    """The newest `checkpoint-N` folder of a run, or None (also when the run has not started yet)."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None


def auto_resume(resume_from_checkpoint) -> bool:
    """Whether `--resume_from_checkpoint` asks for the newest checkpoint (`true`) rather than naming one."""
    return resume_from_checkpoint in ("true", "True", "1")


def resume_checkpoint(resume_from_checkpoint, output_dir):
    """The checkpoint `--resume_from_checkpoint` means for a run in `output_dir`: None when not given, the newest
    `checkpoint-N` there for `true` (None before the first), else the path it names."""
    if not resume_from_checkpoint:
        return None
    return last_checkpoint(output_dir) if auto_resume(resume_from_checkpoint) else resume_from_checkpoint


def stage_args(training_args, subdir, **changes):
    """A copy of `training_args` writing to OUTPUT_DIR/`subdir`, with `changes` (and every column kept: the items are
    plain dicts)."""
    args = {k: v for k, v in training_args.to_dict().items() if not k.startswith("_")}
    args.update(output_dir=os.path.join(training_args.output_dir, subdir), remove_unused_columns=False, **changes)
    return TrainingArguments(**args)


def check_schedule(max_steps: int, epochs: dict, learning_rates: dict):
    """A `ValueError` naming the option, before any work, when a training step would take no step or no useful
    update: the Trainer runs zero steps for zero or negative epochs and still saves and marks the step done, and a
    zero (or negative) learning rate leaves the weights as they were (or climbs the loss). `epochs` and
    `learning_rates` map option names (`--num_train_epochs`) to their values; epochs do not count when `max_steps` > 0,
    since the Trainer then stops by steps."""
    for option, value in (epochs.items() if max_steps <= 0 else ()):
        if isinstance(value, bool) or not value > 0:  # also NaN
            raise ValueError(f"{option} {value}: training would take no step; expected a positive number of epochs "
                             "(or --max_steps N)")
        if value == math.inf:  # the Trainer failed converting its step count, once the data was prepared
            raise ValueError(f"{option} {value}: expected a finite number of epochs (or --max_steps N)")
    for option, value in learning_rates.items():
        if isinstance(value, bool) or not 0 < value < math.inf:
            why = (" (at 0 the weights would not change)" if value == 0 else
                   " (at a negative rate training would climb the loss)" if value < 0 else
                   " (an infinite rate makes the weights NaN at the first update)" if value == math.inf else "")
            raise ValueError(f"{option} {value}: expected a positive finite learning rate{why}")


def check_batches(training_args, train: bool = True):
    """A `ValueError` naming the option, before any work, for batch sizes and accumulation steps below 1 (torch
    refused a zero batch only once the data was prepared, and zero accumulation steps ended in a ZeroDivisionError)."""
    names = (["per_device_train_batch_size", "gradient_accumulation_steps"] if train else []) + \
        ["per_device_eval_batch_size"]
    for name in names:
        value = getattr(training_args, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name} {value}: expected a positive integer")


# Config fields that say nothing about what a step trains.
VOLATILE_CONFIG_KEYS = ("architectures", "auto_map", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                        "custom_pipelines",
                        # a generation setting BERT's encoder never reads, saved true or false depending on how a
                        # checkpoint was made
                        "use_cache")
TRAINING_KEYS = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "weight_decay", "warmup_steps", "lr_scheduler_type", "seed",
                 "world_size")


def stage_fingerprint(name, model, args, start, rows, **settings) -> dict:
    """Everything that decides what a pre-training step produces: its start, the model config, the training rows and
    the step's own settings. A finished step is reused only when this matches exactly."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in VOLATILE_CONFIG_KEYS}
    paragraphs = sorted({row["paragraph_id"] for row in rows})
    return {
        "stage": name,
        "start": start,
        "config": config,
        "train_questions": len(rows),
        "train_paragraphs_sha1": hashlib.sha1("\n".join(paragraphs).encode()).hexdigest(),
        "training": {k: str(getattr(args, k, None)) if k == "lr_scheduler_type" else getattr(args, k, None)
                     for k in TRAINING_KEYS},
        **settings,
    }


def extra_passages_settings(rows) -> dict:
    """The fingerprint entries of a step's extra speech (passages beyond the train split): how many and the sha1 of
    their sorted paragraph ids; none without any."""
    if not rows:
        return {}
    ids = sorted(row["paragraph_id"] for row in rows)
    return {"extra_passages": len(ids), "extra_passages_sha1": hashlib.sha1("\n".join(ids).encode()).hexdigest()}


# A model folder's weight files. Not the Trainer's `training_args.bin`: a pickle of the run's arguments (its output
# path among them), which made a folder's identity depend on where it was trained (counted until 2026-12-08).
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def weight_files(folder) -> list[Path]:
    folder = Path(folder)
    return sorted(f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern)) if folder.is_dir() else []


def checkpoint_identity(name_or_path) -> dict:
    """A start checkpoint as a step's fingerprint records it: for a local folder the sha1 of its weight files (so a
    checkpoint rebuilt in place, say a graft of another step-1 encoder, is not taken for the old one, and a folder
    moved elsewhere still is itself); else its name (a Hub id)."""
    files = weight_files(name_or_path)
    return {"weights_sha1": files_sha1(files)} if files else {"name": str(name_or_path)}


def files_sha1(files) -> str:
    """The sha1 over each file's name and bytes, in sorted order: a checkpoint's identity from its weight files."""
    digest = hashlib.sha1()
    for file in sorted(Path(f) for f in files):
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def fingerprint_sha1(fingerprint: dict) -> str:
    return hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


_ABSENT = "(absent)"


def _differences(old: dict, new: dict, prefix="") -> list[str]:
    found = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found


def config_defaults() -> dict:
    """SpeechBertConfig's field defaults, as a fingerprint's `config` holds them."""
    from speechbert import SpeechBertConfig

    return _as_json(SpeechBertConfig().to_dict())


def _without_new_defaults(recorded: dict, wanted: dict) -> dict:
    """`wanted` less the config fields the recorded step does not have that sit at their default: fields added to
    SpeechBertConfig after the step ran, whose defaults keep the behaviour the step was trained with (so a step-1
    folder from before `soft_word_embedding_top_k` existed is still itself). A new field set to anything else stays,
    and the step is refused for it."""
    old, new = recorded.get("config"), wanted.get("config")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return wanted
    defaults = config_defaults()
    kept = {k: v for k, v in new.items() if k in old or k not in defaults or v != defaults[k]}
    return {**wanted, "config": kept}


def _without_volatile(fingerprint: dict) -> dict:
    """A fingerprint less the config keys that say nothing about what a step trains (VOLATILE_CONFIG_KEYS), so a
    step recorded before a key was counted volatile still compares."""
    config = fingerprint.get("config")
    if not isinstance(config, dict):
        return fingerprint
    return {**fingerprint, "config": {k: v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS}}


def _as_json(value):
    return json.loads(json.dumps(value, default=str))  # JSON turns tuples into lists: compare as JSON


def check_stage_settings(folder: Path, fingerprint: dict, extendable=()) -> bool:
    """True when `folder` holds a finished step made with exactly these settings; False when it holds nothing or an
    unfinished run with them. Raises when the folder was made with other settings (or by a version that did not
    record them), instead of silently reusing or resuming it. Top-level keys in `extendable` (the schedule's length)
    may differ: the step then counts as unfinished and resumes from its last checkpoint with the new value. They may
    only grow: a shorter schedule would "resume" past its own end and pass the longer run off as the shorter one."""
    folder = Path(folder)
    settings = folder / "settings.json"
    if not settings.exists() and not (folder / "DONE").exists() and not any(folder.glob("checkpoint-*")):
        restore_shipped(folder, fingerprint)
    done = (folder / "DONE").exists()
    if settings.exists():
        recorded, wanted = _as_json(json.loads(settings.read_text())), _as_json(fingerprint)
        recorded, wanted = _without_volatile(recorded), _without_volatile(wanted)
        wanted = _without_new_defaults(recorded, wanted)
        fixed_recorded = {k: v for k, v in recorded.items() if k not in extendable}
        fixed_wanted = {k: v for k, v in wanted.items() if k not in extendable}
        if fixed_recorded != fixed_wanted:
            changed = "; ".join(_differences(fixed_recorded, fixed_wanted)[:8])
            raise ValueError(f"{folder} was made with other settings ({changed}): delete it to run "
                             f"{fingerprint['stage']} again with these, or choose another --output_dir")
        compared = [k for k in extendable if k in recorded and k in wanted]
        if all(_schedule_length("max_steps", side.get("max_steps", 0)) < float("inf") for side in (recorded, wanted)):
            compared = [k for k in compared if k != "num_train_epochs"]  # a step limit on both sides: epochs unused
        shorter = [f"{k}: {recorded[k]} -> {wanted[k]}" for k in compared
                   if _schedule_length(k, wanted[k]) < _schedule_length(k, recorded[k])]
        if shorter and (done or any(folder.glob("checkpoint-*"))):
            raise ValueError(f"{folder} was trained on a longer schedule than asked ({'; '.join(shorter)}): its "
                             f"checkpoints are past the new end. Delete it to run {fingerprint['stage']} again with "
                             "these, ask for at least the recorded length, or choose another --output_dir")
        return done and recorded == wanted
    if done or any(folder.glob("checkpoint-*")):
        raise ValueError(f"{folder} holds a {'finished' if done else 'started'} step without the settings it was made "
                         f"with (settings.json; written since this check exists): delete it to run "
                         f"{fingerprint['stage']} again")
    return done


def same_step(recorded: dict, wanted: dict) -> bool:
    """Whether a recorded fingerprint is exactly the step `wanted` describes, compared as `check_stage_settings`
    compares (volatile config keys aside, config fields added since at their defaults), schedule included."""
    recorded, wanted = _without_volatile(_as_json(recorded)), _without_volatile(_as_json(wanted))
    return recorded == _without_new_defaults(recorded, wanted)


def restore_shipped(folder: Path, fingerprint: dict) -> bool:
    """Restore into the empty step folder `folder` the shipped checkpoint (`sqa_train.shipped`: the repository's
    `checkpoints/`) made with exactly these settings, if there is one: the step is then finished without training.
    Returns whether one was restored."""
    from . import shipped

    found = shipped.matching(fingerprint, same_step)
    if found is None:
        return False
    shipped.restore(found, folder)
    logger.info("%s: restored from the shipped checkpoint %s (the same settings), not trained again", folder, found)
    return True


def _schedule_length(key, value) -> float:
    """A schedule setting as a comparable length: `max_steps` at 0 or below means no step limit (epochs decide)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")  # not a number: never counted shorter
    return float("inf") if key == "max_steps" and number <= 0 else number


def record_settings(folder: Path, fingerprint: dict, process_index: int = 0):
    """Write `folder/settings.json` as a step starts (main process only), so that an interrupted step is resumed
    only with the same settings; a step that starts (again) is no longer finished, so its `DONE` goes."""
    if process_index == 0:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "DONE").unlink(missing_ok=True)
        (folder / "settings.json").write_text(json.dumps(fingerprint, indent=1, default=str) + "\n")


def mark_done(folder: Path, process_index: int = 0):
    """Mark a step finished (after its weights are saved; main process only): `check_stage_settings` then reports
    it done."""
    if process_index == 0:
        (Path(folder) / "DONE").write_text("finished\n")
