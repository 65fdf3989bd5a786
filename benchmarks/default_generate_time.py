"""Wall time of bare `wildactor generate` (the embedded default model, its example actor and story), end to end.

Each repeat is a fresh process, as a user runs it: interpreter start, imports, model load, 3 shots, MP4s and
contact sheet. The target is <= 20 s on 2 CPU cores.

    python benchmarks/default_generate_time.py --repeats 3 --out benchmarks/results/default_generate_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import machine_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            out = Path(tmp) / "demo"
            shutil.rmtree(out, ignore_errors=True)  # a finished shot would be kept, not regenerated
            start = time.perf_counter()
            subprocess.run(["wildactor", "generate", "-o", str(out)], check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
            print(f"run {i + 1}: {seconds[-1]:.1f} s")
    result = {
        "benchmark": "default_generate_time",
        "command": f"python benchmarks/default_generate_time.py --repeats {args.repeats}",
        "machine": machine_info(),
        "seconds": [round(s, 2) for s in seconds],
        "median_seconds": round(statistics.median(seconds), 2),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
