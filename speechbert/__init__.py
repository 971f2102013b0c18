"""SpeechBERT: end-to-end spoken question answering on transformers' BERT (arXiv:1910.11559)."""

from .configuration_speechbert import SpeechBertConfig
from .feature_extraction_speechbert import SpeechBertFeatureExtractor
from .modeling_speechbert import (
    SpeechBertForPreTraining,
    SpeechBertForQuestionAnswering,
    SpeechBertModel,
    SpeechBertPreTrainedModel,
)
from .pipeline_speechbert import SpokenQuestionAnsweringPipeline
from .processing_speechbert import SpeechBertProcessor
from .segmentation_speechbert import SpeechBertWordSegmenter

__all__ = [
    "SpeechBertConfig",
    "SpeechBertFeatureExtractor",
    "SpeechBertForPreTraining",
    "SpeechBertForQuestionAnswering",
    "SpeechBertModel",
    "SpeechBertPreTrainedModel",
    "SpeechBertProcessor",
    "SpeechBertWordSegmenter",
    "SpokenQuestionAnsweringPipeline",
]
