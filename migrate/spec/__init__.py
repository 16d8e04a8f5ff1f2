"""The pipeline spec: the model (`migrate.spec.model`) and its loader (`migrate.spec.load`)."""

from migrate.errors import SpecError
from migrate.spec.cdc import DEFAULT_POSITION_HEADER, CdcSpec, CdcVerifySpec
from migrate.spec.kafka import KafkaSpec
from migrate.spec.load import (
    DEFAULT_SPEC_NAMES,
    SpecProblems,
    example_spec_path,
    load_spec,
    parse_spec,
    reference_spec_path,
)
from migrate.spec.model import BatchSpec, ChecklistSpec, CompareSpec, PipelineSpec, StreamSpec
from migrate.spec.outputs import ExpectSpec, OutputBatchSpec, OutputSinkSpec, OutputSpec, OutputStreamSpec
from migrate.spec.source import SUPPORTED_SOURCES, SourceSpec

__all__ = [
    "DEFAULT_POSITION_HEADER",
    "DEFAULT_SPEC_NAMES",
    "SUPPORTED_SOURCES",
    "BatchSpec",
    "CdcSpec",
    "CdcVerifySpec",
    "ChecklistSpec",
    "CompareSpec",
    "ExpectSpec",
    "KafkaSpec",
    "OutputBatchSpec",
    "OutputSpec",
    "OutputSinkSpec",
    "OutputStreamSpec",
    "PipelineSpec",
    "SourceSpec",
    "SpecError",
    "SpecProblems",
    "StreamSpec",
    "example_spec_path",
    "load_spec",
    "parse_spec",
    "reference_spec_path",
]
