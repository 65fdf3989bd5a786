"""Actor-Bench metrics, one file per metric. Every metric returns a `MetricResult`; a back-end whose
weights are missing yields `MetricResult.na(...)`, which prints as "n/a: <why>" and never as a number."""

from wildactor.bench.metrics.base import MetricResult, RefImage, sample_indices

__all__ = ["MetricResult", "RefImage", "sample_indices"]
