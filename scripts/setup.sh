#!/usr/bin/env bash
# Install everything driftwarden needs on a fresh Debian/Python 3.11 machine: the Prometheus and
# Alertmanager binaries (integration tests), CPU torch (pinned: an unpinned torch pulls GBs of CUDA),
# the package with its test extras, and the nannyml datasets the tests read (scripts/fetch_data.py).
# Idempotent; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v prometheus >/dev/null || ! { command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null; } || ! command -v chromium >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager chromium fonts-dejavu-core >/dev/null
fi
PY=${PYTHON:-python3}
# A C compiler and the Python headers build the small C extensions (agent/decode/_scan.c,
# detectors/_ecdf.c); without them the install still works, only slower, and the tests say so.
if ! command -v cc >/dev/null || ! $PY -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gcc python3-dev >/dev/null
fi
# clang with its sanitizer runtime: scripts/fuzz.sh builds the C extensions with ASan + UBSan and
# fuzzes the decoders (part of the test command).
if ! command -v clang >/dev/null || ! [ -f "$(clang -print-resource-dir 2>/dev/null)/share/asan_ignorelist.txt" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
if ! $PY -c 'import torch' 2>/dev/null; then
  $PY -m pip install -q 'torch==2.13.0'
fi
$PY -m pip install -q -e '.[test]'
# The datasets the tests and benchmarks read: six files of the nannyml 0.13.1 wheel (Apache-2.0),
# extracted with its licence into data/nannyml/ (or $DRIFTWARDEN_DATA); a no-op once that copy is complete.
$PY scripts/fetch_data.py
$PY -c 'import agent.decode._scan, detectors._ecdf' 2>/dev/null \
  || echo "setup.sh: the C extensions did not build (see pip's output); driftwarden runs, slower" >&2
