"""Objectives: masked (absorbing-state) diffusion and flow matching, with their samplers."""

from zoo.objectives.base import LossOutput, Sample, antithetic_times
from zoo.objectives.flow import FlowMatching, FlowSample
from zoo.objectives.masked import MaskedDiffusion
from zoo.objectives.masked_sampling import (POLICIES, DualCache, NoCache, Policy, PrefixCache,
                                           ScorePolicy, ThresholdPolicy, sample as masked_sample)
from zoo.objectives.schedules import CosineSchedule, LinearSchedule, Schedule, get_schedule

__all__ = [
    "LossOutput", "antithetic_times", "FlowMatching", "FlowSample", "MaskedDiffusion",
    "Sample", "masked_sample", "POLICIES", "Policy", "ScorePolicy", "ThresholdPolicy", "NoCache",
    "PrefixCache", "DualCache", "Schedule", "LinearSchedule", "CosineSchedule",
    "get_schedule",
]
