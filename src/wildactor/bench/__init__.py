"""Actor-Bench: suite spec, runner, metrics (one file each under `metrics/`), baselines and report."""
