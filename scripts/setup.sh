#!/usr/bin/env bash
# Install everything driftwarden needs on a fresh Debian/Python 3.11 machine: the Prometheus and
# Alertmanager binaries (integration tests), CPU torch (pinned: an unpinned torch pulls GBs of CUDA),
# and the package with its test extras. Idempotent; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v prometheus >/dev/null || ! { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; }; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
fi
PY=${PYTHON:-python3}
if ! $PY -c 'import torch' 2>/dev/null; then
  $PY -m pip install -q 'torch==2.13.0'
fi
$PY -m pip install -q -e '.[test]'
