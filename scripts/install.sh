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
