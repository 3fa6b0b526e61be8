import json
import os
import subprocess
import sys

HERE = os.path.dirname(__file__)


def test_mirrored_strategy_matches_single_device_and_noise_level():
    """MirroredStrategy on 2 logical CPUs, in a fresh process (graph mode)."""
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_ogm_parity.py")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["weights_moved"] > 1e-2  # training did something
    # OGM without noise: same trained weights as one device, same batch.
    assert report["max_weight_difference"] < 1e-5
    # GE: the summed update carries noise with the global gradient's std.
    assert 0.92 < report["noise_std_over_gradient_std"] < 1.08
