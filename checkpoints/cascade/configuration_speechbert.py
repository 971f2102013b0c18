"""SpeechBERT configuration.

SpeechBERT (Chuang, Liu, Lee and Lee, "SpeechBERT: An Audio-and-text Jointly Learned Language Model for End-to-end
Spoken Question Answering", Interspeech 2020, arXiv:1910.11559) is a BERT whose input mixes text word pieces with one
embedding per spoken word segment. This config is a `BertConfig` plus the audio front end, the RNN audio
encoder/decoder and the pre-training loss weights.
"""

import math

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

# Every Auto class a SpeechBERT checkpoint answers to. transformers only writes the class that is being saved into
# `auto_map`, so the config carries the whole map itself.
SPEECHBERT_AUTO_MAP = {
    "AutoConfig": "configuration_speechbert.SpeechBertConfig",
    "AutoModel": "modeling_speechbert.SpeechBertModel",
    "AutoModelForPreTraining": "modeling_speechbert.SpeechBertForPreTraining",
    "AutoModelForQuestionAnswering": "modeling_speechbert.SpeechBertForQuestionAnswering",
}

# The checkpoint's own pipeline: `pipeline(model=checkpoint, trust_remote_code=True)` finds it here.
SPEECHBERT_CUSTOM_PIPELINES = {
    "spoken-question-answering": {
        "impl": "pipeline_speechbert.SpokenQuestionAnsweringPipeline",
        "pt": ["AutoModelForQuestionAnswering"],
        "tf": [],
        "type": "multimodal",
    }
}

RNN_TYPES = ("gru", "lstm")
ALIGNMENT_LOSS_TYPES = ("l1", "cosine_softmax", "info_nce")
AUDIO_CODE_MODES = ("direct", "soft_word_embedding")


@strict
class SpeechBertConfig(BertConfig):
    r"""
    All `BertConfig` arguments, plus:

    sampling_rate (`int`, defaults to 16000): rate in Hz the audio must have.
    num_mel_bins (`int`, defaults to 40): mel filters of the MFCC front end.
    num_mfcc (`int`, defaults to 13): cepstral coefficients; with deltas and delta-deltas the frame has
        `feature_size = 3 * num_mfcc` values.
    feature_size (`int`, defaults to 39): size of one feature frame, must equal `3 * num_mfcc`.
    window_ms, hop_ms (`float`, defaults to 25.0 and 10.0): analysis window and hop.
    normalize_features (`bool`, defaults to `True`): per-utterance mean/variance normalisation of every feature.
    max_frames_per_segment (`int`, defaults to 100): frames kept per word segment (1 s at a 10 ms hop); longer
        segments keep their first frames.
    audio_frame_stack (`int`, defaults to 1): consecutive frames stacked into one encoder step. Stacking k frames
        divides the RNN's sequential steps by k.
    audio_encoder_type (`"gru"` or `"lstm"`), audio_encoder_num_layers, audio_encoder_hidden_size,
    audio_encoder_bidirectional: the RNN that turns a segment's frames into one `hidden_size` vector.
    audio_decoder_type, audio_decoder_num_layers, audio_decoder_hidden_size: the RNN that reconstructs the frames
        from that vector (pre-training only).
    reconstruction_loss_weight, alignment_loss_weight, audio_mlm_loss_weight, text_mlm_loss_weight,
        norm_loss_weight: weights of the pre-training loss parts (`norm_loss_weight` defaults to 0: off).
    alignment_loss_type (`str`, defaults to `"l1"`): how step 1 pulls a segment's code towards BERT's input embedding
        of its word: `"l1"` (the paper's L1 distance), `"cosine_softmax"` (cross-entropy of the word's first piece
        under a softmax over the cosine between the code and every vocabulary embedding, divided by
        `alignment_temperature`) or `"info_nce"` (the same softmax over the distinct words of the batch only).
        `norm_loss_weight` adds an L1 term between each code's norm and its word embedding's, which the cosine
        objectives leave free.
    alignment_temperature (`float`, defaults to 0.05): temperature of the cosine softmax (alignment loss and
        `audio_code_mode="soft_word_embedding"`).
    alignment_num_negatives (`int`, defaults to 0): with `alignment_loss_type="cosine_softmax"`, while training,
        run the softmax over the batch's words plus this many other pieces drawn uniformly from the vocabulary each
        step, with the sampled-softmax correction (each drawn piece's logit raised by log(others / drawn)), so
        the loss estimates the full softmax's at a fraction of its cost. 0 (the default): the whole vocabulary.
        Evaluation always uses the whole vocabulary.
    audio_code_mode (`str`, defaults to `"direct"`): what BERT reads at an audio position: `"direct"`, the code
        itself; `"soft_word_embedding"`, the expected word embedding under the code's word distribution,
        `softmax(cos(code, E) / alignment_temperature) @ E` over BERT's input embeddings `E` (exactly a word
        embedding when the encoder is sure of the word).
    soft_word_embedding_top_k (`int`, defaults to 0): with `audio_code_mode="soft_word_embedding"`, take the
        softmax over each code's `k` most similar pieces only (chosen without gradient; the weights and the
        embeddings they mix are exact and trained on that support), which drops the work and memory of the
        vocabulary-wide weights and their backward. 0 (the default): the whole vocabulary.
    soft_word_embedding_pieces (`list[int]`, *optional*): with `audio_code_mode="soft_word_embedding"`, the piece
        ids the soft word embedding mixes (and `soft_word_embedding_top_k` chooses among), e.g. the first pieces of
        the words the encoder was trained on (`run_sqa.py --soft_word_embedding_pieces train`): the encoder cannot
        hear the others, which otherwise hold part of the weight and blur the embedding; fewer pieces are also
        proportionally less work. `None` (the default): the whole vocabulary.
    audio_token_id (`int`, defaults to 1): id in `input_ids` marking a position filled by an audio segment. 1 is
        `[unused0]` in the uncased BERT vocabulary, so no embedding matrix needs resizing.
    mask_token_id (`int`, defaults to 103): the `[MASK]` id; a masked audio segment is fed as its embedding.
    word_segmenter (`bool`, defaults to `False`): the model holds a `SpeechBertWordSegmenter`, which finds word
        segments in the frames without ASR (trained by `run_segmenter.py`; the pipeline uses it when no
        `word_segments` are given). Checkpoints saved without it load without it.
    segmenter_hidden_size, segmenter_num_layers, segmenter_kernel_size (`int`, defaults to 64, 4 and 5): channels,
        dilated layers (dilation 1, 2, 4, ...) and odd kernel width of the segmenter's convolutions.
    segmenter_begin_frames (`int`, defaults to 2): frames at the start of each word labelled `BEGIN` in training.
    segmenter_threshold (`float`, defaults to 0.5): `P(BEGIN)` a peak needs to start a word (`run_segmenter.py`
        chooses it on validation).
    segmenter_min_word_frames (`int`, defaults to 3): shortest word the decoder keeps, in frames.
    segmenter_start_shift (`int`, defaults to 0): frames between a `P(BEGIN)` peak and the word start the decoder
        places there (`run_segmenter.py` measures it on validation: the segmenter peaks inside the `BEGIN` band).
    """

    model_type = "speechbert"

    sampling_rate: int = 16000
    num_mel_bins: int = 40
    num_mfcc: int = 13
    feature_size: int = 39
    window_ms: float | int = 25.0
    hop_ms: float | int = 10.0
    normalize_features: bool = True
    max_frames_per_segment: int = 100
    audio_frame_stack: int = 1
    audio_encoder_type: str = "gru"
    audio_encoder_num_layers: int = 1
    audio_encoder_hidden_size: int = 128
    audio_encoder_bidirectional: bool = True
    audio_decoder_type: str = "gru"
    audio_decoder_num_layers: int = 1
    audio_decoder_hidden_size: int = 128
    reconstruction_loss_weight: float | int = 1.0
    alignment_loss_weight: float | int = 1.0
    audio_mlm_loss_weight: float | int = 1.0
    text_mlm_loss_weight: float | int = 1.0
    norm_loss_weight: float | int = 0.0
    alignment_loss_type: str = "l1"
    alignment_temperature: float | int = 0.05
    alignment_num_negatives: int = 0
    audio_code_mode: str = "direct"
    soft_word_embedding_top_k: int = 0
    soft_word_embedding_pieces: list[int] | None = None
    audio_token_id: int = 1
    mask_token_id: int = 103
    word_segmenter: bool = False
    segmenter_hidden_size: int = 64
    segmenter_num_layers: int = 4
    segmenter_kernel_size: int = 5
    segmenter_begin_frames: int = 2
    segmenter_threshold: float | int = 0.5
    segmenter_min_word_frames: int = 3
    segmenter_start_shift: int = 0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_audio_fields()
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(SPEECHBERT_AUTO_MAP)
        else:
            # A Hub-loaded config may carry "repo--module.Class" names: keep them, add what is missing.
            self.auto_map = {**SPEECHBERT_AUTO_MAP, **self.auto_map}
        if not getattr(self, "custom_pipelines", None):
            self.custom_pipelines = dict(SPEECHBERT_CUSTOM_PIPELINES)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # `from_pretrained(path, num_mfcc=0)` sets keyword arguments after __init__: check them the same way.
        result = super().from_dict(config_dict, **kwargs)
        (result[0] if isinstance(result, tuple) else result).check_audio_fields()
        return result

    def check_audio_fields(self):
        # Raised as plain ValueError (not through @strict's class validators, which wrap it) so callers can catch it.
        positive = (
            "sampling_rate", "num_mel_bins", "num_mfcc", "feature_size", "window_ms", "hop_ms",
            "max_frames_per_segment", "audio_frame_stack", "audio_encoder_num_layers", "audio_encoder_hidden_size",
            "audio_decoder_num_layers", "audio_decoder_hidden_size", "segmenter_hidden_size", "segmenter_num_layers",
            "segmenter_kernel_size", "segmenter_begin_frames", "segmenter_min_word_frames",
        )
        # Written `not 0 < value < inf` so that NaN (which `--config_overrides window_ms=nan` parses) fails too, and
        # infinity with it: a NaN loss weight trained on NaN losses without an error.
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not 0 < value < math.inf:
                raise ValueError(f"SpeechBertConfig.{name} must be a positive number, got {value!r}")
        for name in ("reconstruction_loss_weight", "alignment_loss_weight", "audio_mlm_loss_weight",
                     "text_mlm_loss_weight", "norm_loss_weight", "segmenter_start_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0 <= value < math.inf:
                raise ValueError(f"SpeechBertConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.feature_size != 3 * self.num_mfcc:
            raise ValueError(
                f"SpeechBertConfig.feature_size must be 3 * num_mfcc = {3 * self.num_mfcc} (MFCC + delta + "
                f"delta-delta), got {self.feature_size!r}"
            )
        if self.window_ms < self.hop_ms:
            raise ValueError(
                f"SpeechBertConfig.window_ms ({self.window_ms!r}) must be >= hop_ms ({self.hop_ms!r}) so frames "
                "cover the audio"
            )
        for name in ("audio_encoder_type", "audio_decoder_type"):
            value = getattr(self, name)
            if value not in RNN_TYPES:
                raise ValueError(f"SpeechBertConfig.{name} must be one of {RNN_TYPES}, got {value!r}")
        for name, allowed in (("alignment_loss_type", ALIGNMENT_LOSS_TYPES), ("audio_code_mode", AUDIO_CODE_MODES)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"SpeechBertConfig.{name} must be one of {allowed}, got {value!r}")
        if isinstance(self.alignment_temperature, bool) or not 0 < self.alignment_temperature < math.inf:
            raise ValueError(
                f"SpeechBertConfig.alignment_temperature must be a positive number, got {self.alignment_temperature!r}"
            )
        negatives = self.alignment_num_negatives
        if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 0:
            raise ValueError(
                f"SpeechBertConfig.alignment_num_negatives must be a non-negative integer (0: the whole vocabulary), "
                f"got {negatives!r}"
            )
        top_k = self.soft_word_embedding_top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(
                f"SpeechBertConfig.soft_word_embedding_top_k must be a non-negative integer (0: the whole vocabulary), "
                f"got {top_k!r}"
            )
        pieces = self.soft_word_embedding_pieces
        if pieces is not None:
            bad = (not isinstance(pieces, (list, tuple)) or not pieces
                   or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size for i in pieces))
            if bad or len(set(pieces)) != len(pieces):
                shown = pieces if not isinstance(pieces, (list, tuple)) or len(pieces) <= 8 else f"{list(pieces[:8])}..."
                raise ValueError(
                    f"SpeechBertConfig.soft_word_embedding_pieces must be None or a non-empty list of distinct piece "
                    f"ids in [0, {self.vocab_size}), got {shown!r}"
                )
            self.soft_word_embedding_pieces = sorted(pieces)
        if negatives and self.alignment_loss_type != "cosine_softmax":
            raise ValueError(
                f"SpeechBertConfig.alignment_num_negatives={negatives!r} samples the vocabulary of the "
                f"'cosine_softmax' alignment loss, but alignment_loss_type is {self.alignment_loss_type!r}"
            )
        if self.segmenter_kernel_size % 2 == 0:
            raise ValueError(
                f"SpeechBertConfig.segmenter_kernel_size must be odd (centred convolutions), got "
                f"{self.segmenter_kernel_size!r}"
            )
        if isinstance(self.segmenter_threshold, bool) or not 0 < self.segmenter_threshold < 1:
            raise ValueError(
                f"SpeechBertConfig.segmenter_threshold must lie in (0, 1), got {self.segmenter_threshold!r}"
            )
        for name in ("audio_token_id", "mask_token_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"SpeechBertConfig.{name} must be a vocabulary id in [0, {self.vocab_size}), got {value!r}"
                )
        if self.audio_token_id == self.mask_token_id:
            raise ValueError(
                f"SpeechBertConfig.audio_token_id ({self.audio_token_id}) must differ from mask_token_id"
            )
        if self.pad_token_id is not None and self.audio_token_id == self.pad_token_id:
            raise ValueError(
                f"SpeechBertConfig.audio_token_id ({self.audio_token_id}) must differ from pad_token_id"
            )

    def feature_extractor_kwargs(self) -> dict:
        """The front-end settings a matching `SpeechBertFeatureExtractor` is built with."""
        return {
            "sampling_rate": self.sampling_rate,
            "num_mel_bins": self.num_mel_bins,
            "num_mfcc": self.num_mfcc,
            "feature_size": self.feature_size,
            "window_ms": self.window_ms,
            "hop_ms": self.hop_ms,
            "normalize_features": self.normalize_features,
            "max_frames_per_segment": self.max_frames_per_segment,
        }


SpeechBertConfig.register_for_auto_class()

__all__ = ["SpeechBertConfig", "SPEECHBERT_AUTO_MAP", "SPEECHBERT_CUSTOM_PIPELINES"]
