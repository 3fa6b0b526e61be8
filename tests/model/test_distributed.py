import json
import os
import subprocess
import sys

HERE = os.path.dirname(__file__)


def test_mirrored_strategy_matches_single_device():
    """MirroredStrategy on 2 logical CPUs, in a fresh process (graph mode)."""
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_parity.py")],
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
    # G-Blend: same estimated weights, same training, same (unscaled)
    # per-head losses although Keras scales losses by 1/replicas.
    single, mirrored = report["gblend_weights"]
    for head in single:
        assert abs(single[head] - mirrored[head]) < 1e-4
    assert single != {"a": 1.0, "v": 1.0, "joint": 1.0}  # were estimated
    assert report["gblend_max_weight_difference"] < 1e-4
    assert report["gblend_head_loss_difference"] < 1e-4


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_gblend_fit_completes_with_identical_weights():
    """Two local worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy)."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers},
                         "task": {"type": "worker", "index": index}}
            processes.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "multi_worker_gblend.py")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                     "TF_CONFIG": json.dumps(tf_config)}))
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in reports] == [2, 2]
    assert reports[0]["blend_weights"] == reports[1]["blend_weights"]
    # The estimate moved the weights away from the compiled [1, 1, 1].
    assert reports[0]["blend_weights"] != {"a": 1.0, "v": 1.0, "joint": 1.0}
    assert reports[0]["weights"] == reports[1]["weights"]
