"""Evaluation logits kept beside a finished system (`run_sqa.py`), so that an evaluation interrupted after some
systems, or rerun to add a system or the ensemble, does not predict again what it already predicted.

`OUTPUT_DIR/SYSTEM/eval_logits/SPLIT.npz` holds the start and end logits of every window of SPLIT and the key they
were made under: the model's weights (sha1) and every JSON file saved beside them (config, processor, tokenizer), the
window items and the rows they were built from (sha1 of their contents), the model code (`speechbert/*.py`,
`sqa_train/oracle.py`), the torch and transformers versions, and the system's own settings (`extra`). Anything else
and the split is predicted again (and the file replaced): a stored file is only ever reused for exactly what it was
made from.
"""

import hashlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from .stages import checkpoint_identity

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MODEL_CODE = sorted((ROOT / "speechbert").glob("*.py")) + [ROOT / "sqa_train" / "oracle.py"]


def _sha1_of_objects(objects) -> str:
    digest = hashlib.sha1()
    for obj in objects:
        digest.update(pickle.dumps(obj, protocol=4))
    return digest.hexdigest()


def _sha1_of_files(files) -> dict:
    return {Path(f).name: hashlib.sha1(Path(f).read_bytes()).hexdigest() for f in files}


def model_identity(model_folder, extra=None) -> dict:
    """The model's part of a key, the same for every split: the model saved in `model_folder` (weights, JSON files),
    the model code, the versions, and the system's own settings (`extra`)."""
    import torch
    import transformers

    folder = Path(model_folder)
    return {"weights": checkpoint_identity(folder), "model_files": _sha1_of_files(sorted(folder.glob("*.json"))),
            "model_code": _sha1_of_files(MODEL_CODE), "torch": torch.__version__,
            "transformers": transformers.__version__, "extra": extra or {}}


def logits_key(identity, items, rows) -> dict:
    """What the logits of `items` (built from `rows`) depend on, for the model of `identity` (`model_identity`)."""
    return {**identity, "items_sha1": _sha1_of_objects(items), "rows_sha1": _sha1_of_objects(rows)}


def logits_path(system_folder, split) -> Path:
    return Path(system_folder) / "eval_logits" / f"{split}.npz"


def load_logits(path, key):
    """The stored (start, end) logits when `path` was made under exactly `key`, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) != json.loads(json.dumps(key, default=str)):
                logger.info("%s was made from another model, data or code: predicting again", path)
                return None
            return stored["start"], stored["end"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # a file cut short by an interruption
        logger.warning("%s is unreadable (%s): predicting again", path, error)
        return None


def save_logits(path, key, start, end):
    """Write atomically (a temporary file renamed), so an interruption never leaves a half-written file in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(partial, start=np.asarray(start), end=np.asarray(end), key=np.array(json.dumps(key, default=str)))
    os.replace(partial, path)
