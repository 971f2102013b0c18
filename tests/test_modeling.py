import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import BertConfig, BertModel

from speechbert import (
    SpeechBertForPreTraining,
    SpeechBertForQuestionAnswering,
    SpeechBertModel,
)
from speechbert.modeling_speechbert import SpeechBertAudioEncoder
from speechbert.packed_rnn import _PackedGRUDirection, pack_frames, pad_packed, run_packed_rnn

from .conftest import SpeechBertTester, seeded


def stack_frames(features, lengths, k):
    """Reference for the encoder's input: k consecutive frames concatenated into one step, (N, T, F) ->
    (N, ceil(T / k), k * F), zero-padded past T; lengths in steps."""
    if k == 1:
        return features, lengths
    n, t, f = features.shape
    features = F.pad(features, (0, 0, 0, (-t) % k))
    return features.reshape(n, -1, k * f), torch.div(lengths + k - 1, k, rounding_mode="floor")


MODELS = [SpeechBertModel, SpeechBertForPreTraining, SpeechBertForQuestionAnswering]


def batch(processor, num_words=(12, 7), **kwargs):
    return SpeechBertTester.inputs(processor, num_words, **kwargs)


@pytest.mark.parametrize("model_class", MODELS)
def test_shapes_and_dtypes(model_class, tester, processor):
    inputs = batch(processor)
    model = seeded(model_class, tester.config())
    with torch.no_grad():
        out = model(**inputs)
    b, length = inputs["input_ids"].shape
    num_segments = int((inputs["audio_feature_lengths"] > 0).sum())
    if model_class is SpeechBertForQuestionAnswering:
        assert out.start_logits.shape == out.end_logits.shape == (b, length)
        assert out.start_logits.dtype == torch.float32
    elif model_class is SpeechBertForPreTraining:
        assert out.prediction_logits.shape == (b, length, tester.vocab_size)
        assert out.audio_codes.shape == (num_segments, 32)
        assert out.reconstructed_features.shape[:2] == (num_segments, inputs["audio_features"].shape[2])
    else:
        assert out.last_hidden_state.shape == (b, length, 32) and out.pooler_output.shape == (b, 32)
        assert out.audio_codes.shape == (num_segments, 32)


def test_text_only_equals_bert_with_same_weights(tester):
    config = tester.config()
    speech = seeded(SpeechBertModel, config)
    bert = BertModel(BertConfig(**{k: v for k, v in config.to_dict().items() if k in BertConfig.__dataclass_fields__}))
    missing = bert.load_state_dict(speech.state_dict(), strict=False)
    assert missing.missing_keys == [] and all(k.startswith("audio_encoder.") for k in missing.unexpected_keys)
    bert.eval()
    input_ids = torch.tensor([[3, 6, 7, 8, 20, 4, 10, 13, 4], [3, 9, 10, 4, 11, 12, 4, 0, 0]])
    mask = (input_ids != 0).long()
    types = torch.tensor([[0] * 6 + [1] * 3, [0] * 4 + [1] * 5])
    with torch.no_grad():
        a = speech(input_ids=input_ids, attention_mask=mask, token_type_ids=types)
        b = bert(input_ids=input_ids, attention_mask=mask, token_type_ids=types)
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(a.pooler_output, b.pooler_output, rtol=0, atol=0)
    assert a.audio_codes is None


def test_gradients_reach_the_audio_encoder(tester, processor):
    inputs = batch(processor, answer_times=[(0.5, 1.2), (0.4, 0.9)])
    model = SpeechBertForQuestionAnswering(tester.config()).train()
    model(**inputs).loss.backward()
    for name, param in model.bert.audio_encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model_class", [SpeechBertModel, SpeechBertForQuestionAnswering])
def test_example_alone_equals_example_padded_in_batch(model_class, tester, processor):
    model = seeded(model_class, tester.config())
    both = batch(processor, num_words=(5, 12))  # the first is padded in segments, frames and tokens
    alone = batch(processor, num_words=(5,))
    assert both["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.no_grad():
        a, b = model(**alone), model(**both)
    n = alone["input_ids"].shape[1]
    if model_class is SpeechBertModel:
        torch.testing.assert_close(b.last_hidden_state[0, :n], a.last_hidden_state[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.audio_codes[:5], a.audio_codes, atol=1e-6, rtol=1e-5)
    else:
        torch.testing.assert_close(b.start_logits[0, :n], a.start_logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b.end_logits[0, :n], a.end_logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"audio_encoder_type": "lstm"},
        {"audio_encoder_bidirectional": False, "audio_encoder_num_layers": 2},
        {"audio_frame_stack": 3},
    ],
)
def test_packed_encoder_equals_per_segment_loop(tester, overrides):
    config = tester.config(**overrides)
    torch.manual_seed(0)
    encoder = SpeechBertAudioEncoder(config).eval()
    lengths = torch.tensor([7, 1, 13, 4, 13, 2])
    features = torch.randn(len(lengths), 13, 39)
    features[torch.arange(13)[None, :] >= lengths[:, None]] = 0.0
    with torch.no_grad():
        packed = encoder(features, lengths)
        for i, n in enumerate(lengths.tolist()):
            # Reference: each segment alone, unpadded, through the plain RNN.
            x, _ = stack_frames(features[i : i + 1, :n], torch.tensor([n]), config.audio_frame_stack)
            _, state = encoder.rnn(x)
            state = state[0] if isinstance(state, tuple) else state
            directions = encoder.num_directions
            reference = encoder.projection(state[-directions:].transpose(0, 1).reshape(1, -1))
            torch.testing.assert_close(packed[i : i + 1], reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rnn_class", [torch.nn.GRU, torch.nn.LSTM])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("need_output", [True, False])
def test_training_rnn_loop_equals_native_packed_rnn(rnn_class, num_layers, bidirectional, need_output):
    # The CPU training path (run_packed_rnn's own loop) must give the native RNN's states, outputs and gradients.
    torch.manual_seed(0)
    rnn = rnn_class(7, 5, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(6, 9, 7, requires_grad=True)
    packed = pack_padded_sequence(x, torch.tensor([9, 1, 4, 4, 7, 2]), batch_first=True, enforce_sorted=False)

    def loss_and_grads(output, state):
        loss = state.square().sum()
        if output is not None:
            loss = loss + pad_packed_sequence(output, batch_first=True)[0].sin().sum()
        return [state, *torch.autograd.grad(loss, [x, *rnn.parameters()], retain_graph=True)]

    native_output, native_state = rnn(packed)
    native_state = native_state[0] if isinstance(native_state, tuple) else native_state
    expected = loss_and_grads(native_output if need_output else None, native_state)
    output, state = run_packed_rnn(rnn, packed, need_output=need_output)
    assert (output is None) != need_output
    for got, want in zip(loss_and_grads(output, state), expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the inference path is the native kernel
        torch.testing.assert_close(run_packed_rnn(rnn, packed)[1], native_state.detach())


@pytest.mark.parametrize("rnn_class", [torch.nn.GRU, torch.nn.LSTM])
@pytest.mark.parametrize("grad", [True, False])
def test_packed_rnn_over_source_rows_equals_materialised_rows(rnn_class, grad):
    # The decoder packs row numbers into its codes (`source=`): same outputs, states and gradients as packing the rows.
    torch.manual_seed(0)
    rnn = rnn_class(6, 4, num_layers=2, bidirectional=True, batch_first=True)
    codes = torch.randn(5, 6, requires_grad=True)
    lengths = torch.tensor([3, 1, 4, 2, 4])
    rows = torch.arange(5)[:, None].expand(-1, 4)
    by_index = pack_padded_sequence(rows, lengths, batch_first=True, enforce_sorted=False)
    by_value = pack_padded_sequence(codes[:, None, :].expand(-1, 4, -1), lengths, batch_first=True,
                                    enforce_sorted=False)
    results = []
    for packed, source in ((by_index, codes), (by_value, None)):
        with torch.set_grad_enabled(grad):
            output, state = run_packed_rnn(rnn, packed, source=source)
        got = [output.data, state]
        if grad:
            got += torch.autograd.grad(output.data.sin().sum() + state.square().sum(), [codes, *rnn.parameters()])
        results.append(got)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("need_output", [True, False])
def test_packed_gru_direction_backward_passes_gradcheck(reverse, bias, need_output):
    # The hand-written backward against finite differences (float64), through the final states and the outputs.
    torch.manual_seed(0)
    batch_sizes, hidden = [4, 4, 3, 1, 1], 3
    gi = torch.randn(sum(batch_sizes), 3 * hidden, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(3 * hidden, hidden, dtype=torch.float64, requires_grad=True)
    b_hh = torch.randn(3 * hidden, dtype=torch.float64, requires_grad=True) if bias else None

    def run(gi, w_hh, *b):
        final, output = _PackedGRUDirection.apply(gi, w_hh, b[0] if b else None, batch_sizes, reverse, need_output)
        return (final, output) if need_output else final

    assert torch.autograd.gradcheck(run, (gi, w_hh) + ((b_hh,) if bias else ()))


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pad_packed_equals_pad_packed_sequence(enforce_sorted):
    lengths = torch.tensor([6, 5, 5, 2, 1]) if enforce_sorted else torch.tensor([2, 6, 1, 5, 5])
    x = torch.randn(5, 6, 3, requires_grad=True)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=enforce_sorted)
    want, _ = pad_packed_sequence(packed, batch_first=True, total_length=8)
    got = pad_packed(packed, total_length=8)
    torch.testing.assert_close(got, want)
    weights = torch.randn(5, 8, 3)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), x, retain_graph=True)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), x)
    torch.testing.assert_close(grad_got, grad_want)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pack_frames_equals_stacking_then_packing(k):
    # One gather of the frames the RNN reads == select rows, stack k frames (zero-padded past T), pack.
    torch.manual_seed(0)
    features = torch.randn(7, 10, 4)
    rows = torch.tensor([5, 0, 2, 6])
    lengths = torch.tensor([10, 3, 1, 7])
    packed = pack_frames(features, lengths, k, rows)
    want, want_lengths = stack_frames(features[rows], lengths, k)
    reference = pack_padded_sequence(want, want_lengths, batch_first=True, enforce_sorted=False)
    assert packed.batch_sizes.tolist() == reference.batch_sizes.tolist()
    total = want.shape[1]
    torch.testing.assert_close(pad_packed(packed, total), pad_packed(reference, total), rtol=0, atol=0)


def test_frame_stacking_shapes():
    features = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    stacked, lengths = stack_frames(features, torch.tensor([7, 4]), 3)
    assert stacked.shape == (2, 3, 9) and lengths.tolist() == [3, 2]
    torch.testing.assert_close(stacked[0, 1], features[0, 3:6].reshape(-1))


def test_pretraining_loss_parts(tester, processor):
    inputs = batch(processor)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, 2] = inputs["input_ids"][0, 2]  # one text position
    audio_positions = inputs["input_ids"] == tester.config().audio_token_id
    first_audio = audio_positions[1].nonzero()[0, 0]
    labels[1, first_audio] = inputs["audio_word_ids"][1, 0]  # one audio position, masked below
    audio_mask = torch.zeros_like(inputs["audio_feature_lengths"], dtype=torch.bool)
    audio_mask[1, 0] = True
    config = tester.config(reconstruction_loss_weight=0.5, alignment_loss_weight=2.0)
    model = seeded(SpeechBertForPreTraining, config)
    out = model(**inputs, labels=labels, audio_mask=audio_mask)
    parts = [out.reconstruction_loss, out.alignment_loss, out.text_mlm_loss, out.audio_mlm_loss]
    assert all(p is not None and p.ndim == 0 and p > 0 for p in parts)
    expected = 0.5 * parts[0] + 2.0 * parts[1] + parts[2] + parts[3]
    torch.testing.assert_close(out.loss, expected)
    # The masked segment is fed as [MASK]: the prediction at its position changes.
    assert out.prediction_logits is None  # with labels, only labelled positions are scored
    with torch.no_grad():
        masked, unmasked = model(**inputs, audio_mask=audio_mask), model(**inputs)
    assert masked.prediction_logits.shape == unmasked.prediction_logits.shape
    assert not torch.allclose(masked.prediction_logits[1, first_audio], unmasked.prediction_logits[1, first_audio])
    torch.testing.assert_close(masked.prediction_logits[0], unmasked.prediction_logits[0])
    # The labelled-positions-only loss equals cross-entropy over the full logits.
    expected_text = torch.nn.functional.cross_entropy(masked.prediction_logits[0, 2:3], labels[0, 2:3])
    torch.testing.assert_close(out.text_mlm_loss, expected_text)
    out.loss.backward()
    assert model.audio_decoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    assert model.bert.audio_encoder.rnn.weight_ih_l0.grad.abs().sum() > 0


def test_mlm_head_is_tied_to_word_embeddings(tester):
    model = SpeechBertForPreTraining(tester.config())
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_audio_position_count_must_match_segments(tester, processor):
    inputs = batch(processor)
    model = seeded(SpeechBertModel, tester.config())
    lengths = inputs["audio_feature_lengths"].clone()
    lengths[0, 3] = 0
    with pytest.raises(ValueError, match=r"positions per row \[12, 7\], segments per row \[11, 7\]"):
        model(**{**inputs, "audio_feature_lengths": lengths})
    with pytest.raises(ValueError, match=r"audio positions .* no audio_features"):
        model(input_ids=inputs["input_ids"])
    with pytest.raises(ValueError, match=r"audio_features must have shape"):
        model(input_ids=inputs["input_ids"], audio_features=inputs["audio_features"][..., :13],
              audio_feature_lengths=inputs["audio_feature_lengths"])


def test_gradient_checkpointing_gives_same_gradients(tester, processor):
    inputs = batch(processor, answer_times=[(0.5, 1.2), (0.4, 0.9)])
    grads = []
    for checkpointing in (False, True):
        model = seeded(SpeechBertForQuestionAnswering, tester.config()).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.bert.encoder.layer)
        model(**inputs).loss.backward()
        grads.append(model.bert.audio_encoder.projection.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_sdpa_and_eager_attention_agree(tester, processor):
    inputs = batch(processor)
    outs = []
    for implementation in ("eager", "sdpa"):
        config = tester.config()
        config._attn_implementation = implementation
        with torch.no_grad():
            outs.append(seeded(SpeechBertForQuestionAnswering, config)(**inputs).start_logits)
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(outs[0][mask], outs[1][mask], atol=1e-5, rtol=1e-5)


def test_from_text_bert_reports_keys_and_initialises_rnns(tmp_path, tester, tokenizer):
    config = tester.config()
    bert_config = BertConfig(**{k: v for k, v in config.to_dict().items() if k in BertConfig.__dataclass_fields__})
    torch.manual_seed(0)
    bert = BertModel(bert_config)
    bert.save_pretrained(tmp_path)
    model, info = SpeechBertForPreTraining.from_text_bert(tmp_path, tokenizer=tokenizer, audio_frame_stack=2)
    assert model.config.audio_frame_stack == 2 and model.config.model_type == "speechbert"
    assert any(k.startswith("bert.audio_encoder.rnn.") for k in info["missing_keys"])
    assert any(k.startswith("audio_decoder.rnn.") for k in info["missing_keys"])
    assert set(info["unexpected_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    for name, param in model.named_parameters():
        assert torch.isfinite(param).all(), name
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    torch.testing.assert_close(
        model.bert.encoder.layer[1].output.dense.weight, bert.encoder.layer[1].output.dense.weight
    )
    rnn = model.bert.audio_encoder.rnn
    assert rnn.weight_hh_l0.std() > 0 and (rnn.bias_ih_l0 == 0).all()


def test_from_text_bert_rejects_other_models(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"holds a 'gpt2' model: expected a BERT checkpoint"):
        SpeechBertForQuestionAnswering.from_text_bert(tmp_path)


FIXTURE = Path(__file__).parent / "fixtures" / "tiny-speechbert-qa"


def test_pinned_output_slice(processor):
    """Guards the model's arithmetic and the checkpoint format: a tiny checkpoint saved by an earlier version
    (`tests/fixtures/tiny-speechbert-qa`, weights and config only, saved 2026-12-02) still loads, with no key
    missing, and gives these logits on fixed inputs, whatever the random initialisation does."""
    inputs = batch(processor, num_words=(6,))
    model, info = SpeechBertForQuestionAnswering.from_pretrained(FIXTURE, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model.eval()
    with torch.no_grad():
        logits = model(**inputs).start_logits[0, :8]
    expected = torch.tensor(PINNED_START_LOGITS)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


PINNED_START_LOGITS = [0.0510, 0.1047, -0.0070, -0.0044, 0.0575, -0.1120, 0.1423, 0.1288]


def test_audio_only_pretraining_skips_the_transformer(tester, processor):
    inputs = batch(processor)
    model = seeded(SpeechBertForPreTraining, tester.config())
    full = model(**inputs)
    audio_only = model(audio_features=inputs["audio_features"], audio_feature_lengths=inputs["audio_feature_lengths"],
                       audio_word_ids=inputs["audio_word_ids"])
    assert audio_only.prediction_logits is None and audio_only.text_mlm_loss is None
    torch.testing.assert_close(audio_only.reconstruction_loss, full.reconstruction_loss)
    torch.testing.assert_close(audio_only.alignment_loss, full.alignment_loss)
    torch.testing.assert_close(audio_only.loss, full.reconstruction_loss + full.alignment_loss)
    with pytest.raises(ValueError, match="pass input_ids, or audio_features"):
        model(labels=torch.zeros(1, 3, dtype=torch.long))


def test_too_long_input_is_named(tester, processor):
    inputs = batch(processor, num_words=(150,), max_length=200, stride=10)
    model = seeded(SpeechBertModel, tester.config())
    with pytest.raises(ValueError, match=r"the input has \d+ positions but the model has 128 position embeddings"):
        model(**inputs)


@pytest.mark.parametrize("kind", ["l1", "cosine_softmax", "info_nce"])
def test_alignment_loss_types_by_hand(tester, processor, kind):
    inputs = batch(processor)
    config = tester.config(alignment_loss_type=kind, alignment_temperature=0.1, norm_loss_weight=0.5,
                           reconstruction_loss_weight=0.0)
    model = seeded(SpeechBertForPreTraining, config)
    out = model(audio_features=inputs["audio_features"], audio_feature_lengths=inputs["audio_feature_lengths"],
                audio_word_ids=inputs["audio_word_ids"])
    real = inputs["audio_feature_lengths"] > 0
    words = inputs["audio_word_ids"][real]
    codes = out.audio_codes.detach()
    table = model.bert.embeddings.word_embeddings.weight.detach()
    cos = lambda a, b: torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T  # noqa
    if kind == "l1":
        expected = (codes - table[words]).abs().mean()
    elif kind == "cosine_softmax":
        expected = torch.nn.functional.cross_entropy(cos(codes, table) / 0.1, words)
    else:
        classes = sorted(set(words.tolist()))
        labels = torch.tensor([classes.index(w) for w in words.tolist()])
        expected = torch.nn.functional.cross_entropy(cos(codes, table[classes]) / 0.1, labels)
    torch.testing.assert_close(out.alignment_loss.detach(), expected, rtol=1e-5, atol=1e-6)
    norm = (codes.norm(dim=-1) - table[words].norm(dim=-1)).abs().mean()
    torch.testing.assert_close(out.norm_loss.detach(), norm, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, out.alignment_loss + 0.5 * out.norm_loss)
    out.loss.backward()
    assert model.bert.audio_encoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    assert model.bert.embeddings.word_embeddings.weight.grad is None  # the targets stay fixed


def test_sampled_cosine_softmax(tester, processor):
    inputs = batch(processor)
    kwargs = dict(audio_features=inputs["audio_features"], audio_feature_lengths=inputs["audio_feature_lengths"],
                  audio_word_ids=inputs["audio_word_ids"])
    config = tester.config(alignment_loss_type="cosine_softmax", alignment_temperature=0.1,
                           reconstruction_loss_weight=0.0, alignment_num_negatives=5)
    model = seeded(SpeechBertForPreTraining, config)
    real = inputs["audio_feature_lengths"] > 0
    words = inputs["audio_word_ids"][real]
    table = model.bert.embeddings.word_embeddings.weight.detach()
    cos = lambda a, b: torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T  # noqa
    model.train()
    torch.manual_seed(3)
    out = model(**kwargs)
    codes = out.audio_codes.detach()
    # By hand: the batch's words, then 5 other pieces of the same draw, each standing for (V - P) / 5 pieces.
    torch.manual_seed(3)
    classes = sorted(set(words.tolist()))
    draw = torch.randperm(table.shape[0])[: 5 + len(classes)].tolist()
    drawn = [w for w in draw if w not in classes][:5]
    others = table.shape[0] - len(classes)
    logits = cos(codes, table[classes + drawn]) / 0.1
    logits[:, len(classes):] += math.log(others / 5)
    labels = torch.tensor([classes.index(w) for w in words.tolist()])
    expected = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(out.alignment_loss.detach(), expected, rtol=1e-5, atol=1e-6)
    out.loss.backward()
    assert model.bert.audio_encoder.rnn.weight_ih_l0.grad.abs().sum() > 0
    # Evaluation scores against the whole vocabulary, as does a sample that covers it.
    full = torch.nn.functional.cross_entropy(cos(codes, table) / 0.1, words)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**kwargs).alignment_loss, full, rtol=1e-5, atol=1e-6)
    model.train()
    model.config.alignment_num_negatives = table.shape[0]
    with torch.no_grad():
        torch.testing.assert_close(model(**kwargs).alignment_loss, full, rtol=1e-5, atol=1e-6)


def test_cosine_softmax_prefers_the_right_word(tester):
    config = tester.config(alignment_loss_type="cosine_softmax", alignment_temperature=0.05)
    model = seeded(SpeechBertForPreTraining, config)
    table = model.bert.embeddings.word_embeddings.weight.detach()
    words = torch.tensor([10, 20])
    right = model._alignment_loss(table[words] * 7.0, words)  # scale-free: the right direction wins
    wrong = model._alignment_loss(table[words.flip(0)], words)
    assert right < 0.5 < wrong


def test_unit_embeddings_are_cached_only_while_the_weights_stay(tester):
    model = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2))
    codes = torch.randn(5, model.config.hidden_size)
    weight = model.embeddings.word_embeddings.weight

    def by_hand():
        table = F.normalize(weight.detach().float(), dim=-1)
        return (F.normalize(codes, dim=-1) @ table.T / 0.2).softmax(-1) @ weight.detach().float()

    with torch.no_grad():
        torch.testing.assert_close(model.soft_word_embedding(codes), by_hand())
        weight.mul_(-1.5)  # an in-place update (as load_state_dict or an optimizer step makes)
        torch.testing.assert_close(model.soft_word_embedding(codes), by_hand())
    model.embeddings.word_embeddings.weight = torch.nn.Parameter(torch.randn_like(weight))
    weight = model.embeddings.word_embeddings.weight
    with torch.no_grad():
        torch.testing.assert_close(model.soft_word_embedding(codes), by_hand())
    # With autograd and trained embeddings nothing is cached: the gradient reaches them. With frozen embeddings a
    # table cached under inference_mode (as a pipeline call leaves it) still lets the codes be trained.
    model.soft_word_embedding(codes).sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    with torch.inference_mode():
        model.soft_word_embedding(codes)
    weight.requires_grad_(False)
    trained = codes.clone().requires_grad_()
    model.soft_word_embedding(trained).sum().backward()
    assert trained.grad is not None


def test_embedding_rows_under_autocast_are_cast_once_to_the_same_numbers(tester):
    """Under CPU bf16 autocast the soft word embedding reads its tables in bf16, cached: the numbers autocast's own
    casts give at every call; float32 calls keep their own table; both follow the weights."""
    model = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2))
    codes = torch.randn(5, model.config.hidden_size)
    weight = model.embeddings.word_embeddings.weight

    def by_hand():  # what autocast makes of the float32 computation, casting the tables at every call
        table = weight.detach().float()
        scores = (F.normalize(codes, dim=-1) / 0.2) @ F.normalize(table, dim=-1).T
        return (scores.softmax(-1) @ table).float()

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    with torch.no_grad():
        with autocast():
            expected = by_hand()
            first, second = model.soft_word_embedding(codes), model.soft_word_embedding(codes)
        assert expected.dtype == first.dtype == torch.float32 and torch.equal(first, expected)
        assert torch.equal(second, first)
        cached = model._embedding_rows_cache
        assert {dtype for _, dtype in cached} == {torch.bfloat16} and cached[True, torch.bfloat16][2].dtype == torch.bfloat16
        torch.testing.assert_close(model.soft_word_embedding(codes), by_hand())  # float32 outside autocast
        assert {dtype for _, dtype in cached} == {torch.bfloat16, torch.float32}
        weight.mul_(-1.5)
        with autocast():
            assert torch.equal(model.soft_word_embedding(codes), by_hand())
            assert not torch.equal(model.soft_word_embedding(codes), first)


def test_soft_word_embedding_mode(tester, processor):
    inputs = batch(processor)
    direct = seeded(SpeechBertModel, tester.config())
    soft = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2))
    soft.load_state_dict(direct.state_dict())
    with torch.no_grad():
        embeds_direct, codes = direct.embed_inputs(inputs["input_ids"], inputs["audio_features"],
                                                   inputs["audio_feature_lengths"])
        embeds_soft, codes_soft = soft.embed_inputs(inputs["input_ids"], inputs["audio_features"],
                                                    inputs["audio_feature_lengths"])
    torch.testing.assert_close(codes_soft, codes)  # the codes are the same; only what BERT reads differs
    audio = inputs["input_ids"] == soft.config.audio_token_id
    table = soft.embeddings.word_embeddings.weight
    weights = (torch.nn.functional.normalize(codes, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T / 0.2)
    torch.testing.assert_close(embeds_soft[audio], weights.softmax(-1) @ table)
    torch.testing.assert_close(embeds_soft[~audio], embeds_direct[~audio])
    # Masking one segment (the cross-modal MLM) feeds [MASK] there and leaves the others soft.
    audio_mask = torch.zeros_like(inputs["audio_feature_lengths"], dtype=torch.bool)
    audio_mask[0, 0] = True
    with torch.no_grad():
        embeds_masked, _ = soft.embed_inputs(inputs["input_ids"], inputs["audio_features"],
                                             inputs["audio_feature_lengths"], audio_mask)
    first = audio[0].nonzero()[0, 0]
    torch.testing.assert_close(embeds_masked[0, first], table[soft.config.mask_token_id])
    keep = audio.clone()
    keep[0, first] = False
    torch.testing.assert_close(embeds_masked[keep], embeds_soft[keep])
    # A sure encoder (a code pointing at one word, low temperature) feeds exactly that word's embedding.
    sure = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding",
                                                 alignment_temperature=1e-3))
    word = sure.embeddings.word_embeddings.weight[12:13].detach()
    torch.testing.assert_close(sure.soft_word_embedding(word * 3), word, atol=1e-4, rtol=1e-4)


def test_soft_word_embedding_over_the_top_k_pieces(tester):
    """`soft_word_embedding_top_k`: the softmax over each code's k most similar pieces, by hand; gradients reach
    those rows of the embedding table only; k >= the vocabulary is the whole-vocabulary softmax."""
    whole = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2))
    top = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2,
                                               soft_word_embedding_top_k=3))
    top.load_state_dict(whole.state_dict())
    codes = torch.randn(5, 32, generator=torch.Generator().manual_seed(1), requires_grad=True)
    table = whole.embeddings.word_embeddings.weight.detach()
    scores = F.normalize(codes.detach(), dim=-1) @ F.normalize(table, dim=-1).T / 0.2  # (5, V)
    chosen = scores.topk(3, dim=-1).indices
    expected = torch.stack([scores[i, c].softmax(-1) @ table[c] for i, c in enumerate(chosen)])
    got = top.soft_word_embedding(codes)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    grad = top.embeddings.word_embeddings.weight.grad
    reached = set(torch.nonzero(grad.abs().sum(-1)).squeeze(1).tolist())
    assert reached <= set(chosen.reshape(-1).tolist()) and reached
    assert codes.grad is not None and codes.grad.abs().sum() > 0  # a trained encoder still learns through it
    everything = seeded(SpeechBertModel, tester.config(audio_code_mode="soft_word_embedding", alignment_temperature=0.2,
                                                      soft_word_embedding_top_k=tester.vocab_size))
    everything.load_state_dict(whole.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(everything.soft_word_embedding(codes), whole.soft_word_embedding(codes))
        # The whole vocabulary's softmax is close to the top-k one when the mass sits on few pieces.
        assert not torch.allclose(whole.soft_word_embedding(codes), got.detach())


def test_soft_word_embedding_over_chosen_pieces(tmp_path, tester):
    """`soft_word_embedding_pieces`: the softmax and the mix over those rows only, by hand; other rows do not
    matter; every piece is the whole vocabulary; with top_k the k most similar of the pieces; saved and loaded."""
    config = dict(audio_code_mode="soft_word_embedding", alignment_temperature=0.2)
    whole = seeded(SpeechBertModel, tester.config(**config))
    pieces = [4, 9, 12, 13, 20, 21, 30]
    chosen = seeded(SpeechBertModel, tester.config(**config, soft_word_embedding_pieces=list(reversed(pieces))))
    chosen.load_state_dict(whole.state_dict())
    assert chosen.config.soft_word_embedding_pieces == pieces  # kept sorted
    codes = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    table = whole.embeddings.word_embeddings.weight.detach()
    rows = table[pieces]
    scores = F.normalize(codes, dim=-1) @ F.normalize(rows, dim=-1).T / 0.2
    with torch.no_grad():
        got = chosen.soft_word_embedding(codes)
        torch.testing.assert_close(got, scores.softmax(-1) @ rows)
        assert not torch.allclose(got, whole.soft_word_embedding(codes))
        chosen.embeddings.word_embeddings.weight[5].add_(10.0)  # not a chosen piece
        torch.testing.assert_close(chosen.soft_word_embedding(codes), got)
        chosen.embeddings.word_embeddings.weight[9].add_(1.0)  # a chosen one: the cached rows (unit and mixed) follow
        now = chosen.embeddings.word_embeddings.weight.detach()[pieces]
        updated = (F.normalize(codes, dim=-1) @ F.normalize(now, dim=-1).T / 0.2).softmax(-1) @ now
        assert not torch.allclose(updated, got)
        torch.testing.assert_close(chosen.soft_word_embedding(codes), updated)
        chosen.config.soft_word_embedding_pieces = pieces[:3]  # other pieces: other cached rows
        now = now[:3]
        torch.testing.assert_close(chosen.soft_word_embedding(codes),
                                   (F.normalize(codes, dim=-1) @ F.normalize(now, dim=-1).T / 0.2).softmax(-1) @ now)
    every = seeded(SpeechBertModel, tester.config(**config, soft_word_embedding_pieces=list(range(tester.vocab_size))))
    every.load_state_dict(whole.state_dict())
    top = seeded(SpeechBertModel, tester.config(**config, soft_word_embedding_pieces=pieces,
                                               soft_word_embedding_top_k=2))
    top.load_state_dict(whole.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(every.soft_word_embedding(codes), whole.soft_word_embedding(codes))
        best = scores.topk(2, dim=-1).indices
        expected = torch.stack([scores[i, b].softmax(-1) @ rows[b] for i, b in enumerate(best)])
        torch.testing.assert_close(top.soft_word_embedding(codes), expected)
    top.save_pretrained(tmp_path / "top")
    loaded = SpeechBertModel.from_pretrained(tmp_path / "top")
    assert loaded.config.soft_word_embedding_pieces == pieces
    with torch.no_grad():
        torch.testing.assert_close(loaded.soft_word_embedding(codes), expected)


@pytest.mark.parametrize("mode", ["direct", "soft_word_embedding"])
def test_precomputed_audio_codes_equal_the_features(tester, processor, mode):
    """A frozen encoder's codes, computed beforehand and fed as `audio_codes`, give the same answer as the frames."""
    inputs = batch(processor)
    model = seeded(SpeechBertForQuestionAnswering, tester.config(audio_code_mode=mode)).eval()
    lengths = inputs["audio_feature_lengths"]
    with torch.no_grad():
        codes = model.bert.encode_audio(inputs["audio_features"], lengths)  # (N, H) real segments, row-major
        padded = torch.full((*lengths.shape, codes.shape[-1]), float("nan"))  # padding is never read
        padded[lengths > 0] = codes
        expected = model(**inputs)
        fed = {k: v for k, v in inputs.items() if k != "audio_features"}
        got = model(**fed, audio_codes=padded)
    torch.testing.assert_close(got.start_logits, expected.start_logits)
    torch.testing.assert_close(got.end_logits, expected.end_logits)
    with pytest.raises(ValueError, match="audio_features or audio_codes, not both"):
        model(**inputs, audio_codes=padded)
    with pytest.raises(ValueError, match=r"audio_codes must have shape \(batch, segments, 32\), got \(2, 12, 5\)"):
        model(**fed, audio_codes=padded[..., :5])
    with pytest.raises(ValueError, match="audio_codes were given without audio_feature_lengths"):
        model(**{k: v for k, v in fed.items() if k != "audio_feature_lengths"}, audio_codes=padded)


@pytest.mark.parametrize("model_class", [SpeechBertModel, SpeechBertForQuestionAnswering, SpeechBertForPreTraining])
def test_hidden_states_and_attentions_are_returned_on_request(tester, processor, model_class):
    config, inputs = tester.prepare_config_and_inputs(processor)
    config._attn_implementation = "eager"  # attention weights need the eager kernel
    model = seeded(model_class, config)
    with torch.no_grad():
        plain = model(**inputs)
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
    length = inputs["input_ids"].shape[1]
    assert plain.hidden_states is None and plain.attentions is None
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (2, length, config.hidden_size) for h in out.hidden_states)
    assert len(out.attentions) == config.num_hidden_layers
    assert all(a.shape == (2, config.num_attention_heads, length, length) for a in out.attentions)
    # The first hidden state is the embedding layer's output over the mixed (audio + text) input.
    base = model if model_class is SpeechBertModel else model.bert
    embeds, _ = base.embed_inputs(inputs["input_ids"], inputs["audio_features"], inputs["audio_feature_lengths"])
    expected = base.embeddings(inputs_embeds=embeds, token_type_ids=inputs["token_type_ids"])
    torch.testing.assert_close(out.hidden_states[0], expected)


def test_bf16_autocast_runs_the_audio_encoder_and_keeps_the_answer(tester, processor):
    """Under CPU bf16 autocast (what `--bf16` does) the RNN and BERT run in reduced precision: the logits stay finite
    and close to fp32's, and a backward pass reaches the audio encoder."""
    inputs = batch(processor, answer_times=[(0.5, 1.0), (0.4, 0.8)])
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    with torch.no_grad():
        reference = model(**inputs).start_logits
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs)
    assert torch.isfinite(out.start_logits).all()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(**inputs).start_logits.float()
    torch.testing.assert_close(low, reference, atol=0.1, rtol=0.05)
    out.loss.backward()
    grads = [p.grad for p in model.bert.audio_encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
