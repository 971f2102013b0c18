"""Oracle codes: SpeechBERT's QA path with every audio code replaced by BERT's own embedding of the segment's word.

A measurement, not a shipped mode (`run_sqa.py --oracle_codes first_piece|mean_pieces`). It splits the gap between
SpeechBERT and the cascade in two: fed the ASR words at the ASR segments, the QA path (processor windows, labels,
decoding, one position per word) should score close to the cascade, which reads the same words as word pieces; fed
the reference words at the reference segments, close to the text upper bound. What the oracle loses against those is
lost after the audio encoder; what SpeechBERT loses against the oracle is the codes'.
"""

from dataclasses import dataclass

import numpy as np
import torch

from speechbert.modeling_speechbert import SpeechBertForQuestionAnswering

from .data import pad_tokens, span_labels

ORACLE_MODES = ("first_piece", "mean_pieces")


def word_pieces(tokenizer, words, max_pieces=8) -> np.ndarray:
    """(n, max_pieces) word-piece ids of each word, -1 padded (a word with no pieces gets `[UNK]`)."""
    table = np.full((len(words), max_pieces), -1, np.int64)
    for i, pieces in enumerate(tokenizer(list(words), add_special_tokens=False)["input_ids"]):
        pieces = (pieces or [tokenizer.unk_token_id])[:max_pieces]
        table[i, : len(pieces)] = pieces
    return table


class OraclePieces:
    """The word pieces of every passage's `asr` or `ref` words, for the windows `speechbert_qa_items` plans."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.pieces: dict[tuple[str, str], np.ndarray] = {}

    def add(self, row, kind: str = "asr"):
        key = (row["paragraph_id"], kind)
        if key not in self.pieces:
            self.pieces[key] = word_pieces(self.tokenizer, row[f"{kind}_words"])
        return self.pieces[key]

    def gather(self, items) -> torch.Tensor:
        """(B, S, P) pieces of each item's segments, -1 for padding."""
        blocks = [self.pieces[(item["paragraph_id"], item["kind"])][item["seg_start"] : item["seg_end"]]
                  for item in items]
        out = np.full((len(items), max(len(b) for b in blocks), blocks[0].shape[1]), -1, np.int64)
        for i, block in enumerate(blocks):
            out[i, : len(block)] = block
        return torch.from_numpy(out)


@dataclass
class OracleQACollator:
    pieces: OraclePieces
    pad_token_id: int

    def __call__(self, items):
        batch = pad_tokens(items, self.pad_token_id)
        batch["oracle_pieces"] = self.pieces.gather(items)
        batch.update(span_labels(items))
        return batch


class OracleSpeechBertForQuestionAnswering(SpeechBertForQuestionAnswering):
    """`SpeechBertForQuestionAnswering` whose audio positions hold the word embedding of each segment's word: its
    first piece (`first_piece`) or the mean of its pieces (`mean_pieces`). The audio encoder is not run."""

    oracle_mode = "first_piece"

    def forward(self, input_ids=None, oracle_pieces=None, **kwargs):
        if oracle_pieces is None:
            raise ValueError("the oracle model needs oracle_pieces (OracleQACollator)")
        if self.oracle_mode not in ORACLE_MODES:
            raise ValueError(f"oracle_mode {self.oracle_mode!r}: expected one of {ORACLE_MODES}")
        embeddings = self.bert.embeddings.word_embeddings
        inputs_embeds = embeddings(input_ids)  # (B, L, H)
        real = oracle_pieces[..., 0] >= 0  # (B, S)
        audio_positions = input_ids == self.config.audio_token_id
        if not torch.equal(audio_positions.sum(1), real.sum(1)):
            raise ValueError(f"audio positions per row {audio_positions.sum(1).tolist()} differ from segments per "
                             f"row {real.sum(1).tolist()}")
        pieces = oracle_pieces[real]  # (N, P)
        if self.oracle_mode == "first_piece":
            codes = embeddings(pieces[:, 0])
        else:
            valid = (pieces >= 0).unsqueeze(-1).to(inputs_embeds.dtype)
            codes = (embeddings(pieces.clamp(min=0)) * valid).sum(1) / valid.sum(1)
        inputs_embeds = inputs_embeds.masked_scatter(audio_positions[..., None], codes.to(inputs_embeds.dtype))
        for key in ("audio_features", "audio_feature_lengths"):
            kwargs.pop(key, None)
        return super().forward(input_ids=None, inputs_embeds=inputs_embeds, **kwargs)


__all__ = ["ORACLE_MODES", "OraclePieces", "OracleQACollator", "OracleSpeechBertForQuestionAnswering", "word_pieces"]
