"""save_pretrained -> load with trust_remote_code in a fresh, offline process that cannot import our package."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from speechbert import SpeechBertForPreTraining, SpeechBertForQuestionAnswering, SpeechBertModel

from .conftest import make_passage, seeded

CHECKPOINTS = {
    "AutoModel": SpeechBertModel,
    "AutoModelForPreTraining": SpeechBertForPreTraining,
    "AutoModelForQuestionAnswering": SpeechBertForQuestionAnswering,
}
OUTPUT_KEYS = {
    "AutoModel": ["last_hidden_state", "pooler_output", "audio_codes"],
    "AutoModelForPreTraining": ["prediction_logits", "reconstruction_loss", "alignment_loss"],
    "AutoModelForQuestionAnswering": ["start_logits", "end_logits"],
}

CHILD = textwrap.dedent(
    """
    import json, sys

    class NoProjectCode:
        # A Hub user has none of our code: everything must come from the checkpoint folder.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("speechbert", "sqa_data"):
                raise ModuleNotFoundError(f"blocked import of {name}")

    sys.meta_path.insert(0, NoProjectCode())
    try:
        import speechbert
        raise AssertionError("the package must not be importable here")
    except ModuleNotFoundError:
        pass
    import numpy as np, torch
    import transformers
    root, auto_name, keys = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    auto = getattr(transformers, auto_name)
    config = transformers.AutoConfig.from_pretrained(root, trust_remote_code=True)
    model = auto.from_pretrained(root, trust_remote_code=True).eval()
    processor = transformers.AutoProcessor.from_pretrained(root, trust_remote_code=True)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(root, trust_remote_code=True)
    data = np.load(root + "/inputs.npz")
    inputs = processor(question="who ruled normandy ?", audio=data["audio"], word_segments=data["segments"].tolist(),
                       words=[str(w) for w in data["words"]], sampling_rate=16000, max_length=24, stride=4,
                       return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    arrays = {k: getattr(out, k).numpy() for k in keys}
    arrays["audio_features"] = inputs["audio_features"].numpy()
    direct = extractor(data["audio"], data["segments"].tolist(), sampling_rate=16000)["audio_features"]
    arrays["extractor_features"] = direct
    np.savez(root + "/outputs.npz", **arrays)
    print(type(config).__name__, type(model).__name__, type(processor).__name__, type(extractor).__name__,
          type(model).__module__)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("auto_name", list(CHECKPOINTS))
def test_fresh_offline_process_loads_identical_model(tmp_path, tester, processor, auto_name):
    model = seeded(CHECKPOINTS[auto_name], tester.config())
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    audio, segments, words = make_passage(20)
    np.savez(tmp_path / "inputs.npz", audio=audio, segments=np.array(segments), words=np.array(words))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), auto_name, json.dumps(OUTPUT_KEYS[auto_name])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = result.stdout.split()[-5:]
    assert names[:4] == ["SpeechBertConfig", model.__class__.__name__, "SpeechBertProcessor",
                         "SpeechBertFeatureExtractor"]
    assert names[4].startswith("transformers_modules."), "the model class must come from the checkpoint's code"

    inputs = processor(question="who ruled normandy ?", audio=audio, word_segments=segments, words=words,
                       sampling_rate=16000, max_length=24, stride=4, return_tensors="pt")
    assert len(inputs["input_ids"]) > 1, "the example must span several windows"
    with torch.no_grad():
        expected = model(**inputs)
    loaded = np.load(tmp_path / "outputs.npz")
    np.testing.assert_array_equal(loaded["audio_features"], inputs["audio_features"].numpy())
    np.testing.assert_array_equal(loaded["extractor_features"][0], processor.feature_extractor.extract(
        audio, segments, sampling_rate=16000)[0])
    for key in OUTPUT_KEYS[auto_name]:
        np.testing.assert_allclose(loaded[key], getattr(expected, key).numpy(), rtol=0, atol=1e-6, err_msg=key)
