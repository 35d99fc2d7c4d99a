"""Objectives (losses) and, beside them, their samplers as plain functions: masked_sample, flow_sample,
ar_sample. A pipeline calls a sampler; it never builds a loss to sample."""

from zoo.objectives.base import LossOutput, Sample, antithetic_times
from zoo.objectives.autoregressive import ar_sample
from zoo.objectives.flow import FlowMatching, FlowSample, flow_sample
from zoo.objectives.masked import MaskedDiffusion
from zoo.objectives.masked_sampling import (POLICIES, DualCache, NoCache, Policy, PrefixCache,
                                           ScorePolicy, ThresholdPolicy, sample as masked_sample)
from zoo.objectives.schedules import CosineSchedule, LinearSchedule, Schedule, get_schedule

__all__ = [
    "LossOutput", "antithetic_times", "FlowMatching", "FlowSample", "flow_sample", "ar_sample", "MaskedDiffusion",
    "Sample", "masked_sample", "POLICIES", "Policy", "ScorePolicy", "ThresholdPolicy", "NoCache",
    "PrefixCache", "DualCache", "Schedule", "LinearSchedule", "CosineSchedule",
    "get_schedule",
]
