#!/usr/bin/env bash
# The device check, one command: where our users train, measure
#   (a) the ResNet-18 pair step (batch 16, the OGM-GE reference's shapes):
#       Keras train_step vs OGM vs OGM-GE, graph and XLA, float32 and mixed
#       precision (benchmarks/speed.py, section ogm_step_resnet18);
#   (b) online G-Blend against naive `fit` on AV-digits at the default
#       estimation fraction, as a ratio in one run (speed.py,
#       online_vs_naive);
#   (c) the file pipeline against in-memory input
#       (benchmarks/pipeline_throughput.py);
#   (d) the tests that exercise MirroredStrategy and mixed precision, on
#       whatever devices the machine has.
# Each writes its table under benchmarks/results/gpu/ (or --out), the
# device named in its heading.
#
# Usage:
#   bash benchmarks/gpu_check.sh --av_digits_dir=DIR          # ~6 min, H100
#   bash benchmarks/gpu_check.sh --small                      # CPU rehearsal
# Without --av_digits_dir it generates the clips first (needs espeak-ng,
# flite and sox: scripts/install.sh); a device machine without them needs a
# folder made beforehand with `python scripts/make_av_digits.py --out DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"

small=0
data_dir=""
out="benchmarks/results/gpu"
for arg in "$@"; do
  case "$arg" in
    --small) small=1 ;;
    --av_digits_dir=*) data_dir="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (--small," \
            "--av_digits_dir=DIR, --out=DIR)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

if [ "$small" -eq 1 ]; then
  # A rehearsal: every section runs, on sizes a 2-core CPU does in minutes.
  clips=120; resnet=(--resnet_steps=2 --resnet_batch_size=2 --repeats=1
                     --modes=graph)
  online=(--av_digits_epochs=2 --epochs=2 --fit_repeats=1)
  pipeline=(--repeats=1)
else
  clips=2000; resnet=(--resnet_steps=8 --repeats=3 --modes=graph --modes=xla)
  online=(--av_digits_fit_repeats=1 --fit_repeats=3)
  pipeline=(--repeats=3)
fi
if [ -z "$data_dir" ]; then
  data_dir="$(mktemp -d)/av_digits"
  echo "== generating $clips AV-digits clips in $data_dir"
  python scripts/make_av_digits.py --out="$data_dir" --n="$clips" --seed=0
fi

started=$(date +%s)
echo "== (a) ResNet-18 pair step: plain / OGM / OGM-GE, precisions"
python benchmarks/speed.py --sections=ogm_step_resnet18 "${resnet[@]}" \
  --precisions=float32 --precisions=mixed_float16 --out="$out/resnet18_step"
echo "== (b) online G-Blend vs naive fit"
python benchmarks/speed.py --sections=online_vs_naive \
  --av_digits_dir="$data_dir" "${online[@]}" --out="$out/online_vs_naive"
echo "== (c) file pipeline vs in-memory input"
python benchmarks/pipeline_throughput.py --data_dir="$data_dir" \
  "${pipeline[@]}" --out="$out/pipeline_throughput"
echo "== (d) MirroredStrategy and mixed-precision tests"
python -m pytest -q -p no:cacheprovider tests/model/test_distributed.py \
  tests/model/test_mixed_precision.py 2>&1 | tee "$out/strategy_tests.txt"
echo "== done in $(( $(date +%s) - started )) s; tables in $out/"
