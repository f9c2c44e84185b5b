#!/usr/bin/env bash
# Coverage-guided fuzzing (atheris + libFuzzer) of the record decoders and the ECDF kernel, with
# the C extensions (the JSON scanner _scan.c, detectors/_ecdf.c) built with AddressSanitizer and
# UndefinedBehaviorSanitizer. See tests/fuzz/README.md.
#
#   scripts/fuzz.sh [DRIVER...]          each driver (default: all) for FUZZ_SECONDS s (default 60)
#   scripts/fuzz.sh --ci [DRIVER...]     CI: 60 s per driver, whatever FUZZ_SECONDS says
#   scripts/fuzz.sh --replay FILE...     run saved inputs once through the sanitized build (a
#                                        file's driver is the name of the folder it is in)
#   FUZZ_SECONDS=600 scripts/fuzz.sh     a longer run
#
# Needs what scripts/setup.sh installs (atheris comes with the test extras) and clang with its
# sanitizer files (Debian: apt-get install clang libclang-rt-14-dev). The sanitized extensions
# go to build/sanitize/ (the in-place .so files are left alone), the corpus the fuzzer grows to
# build/fuzz/corpus/<driver>/ (tests/fuzz/corpus/<driver>/ holds the seeds and is only read),
# each driver's log to build/fuzz/<driver>.log, and crashing inputs to tests/fuzz/crashes/<driver>/.
# Exits non-zero when a driver found a crash (or failed to run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
ALL_DRIVERS=(fuzz_predictions fuzz_labels fuzz_ecdf)
SECS=${FUZZ_SECONDS:-60}
MODE=fuzz
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) SECS=60 ;;
    --replay) MODE=replay ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done

die() { echo "fuzz.sh: $*" >&2; exit 2; }

# ---- prerequisites
command -v clang >/dev/null || die "clang is missing: apt-get install clang libclang-rt-14-dev"
CLANG_MAJOR=$(clang -dumpversion | cut -d. -f1)
[ -f "$(clang -print-resource-dir)/share/asan_ignorelist.txt" ] \
  || die "clang's sanitizer files are missing: apt-get install libclang-rt-${CLANG_MAJOR}-dev"
ATHERIS_DIR=$($PY -c 'import atheris; print(atheris.path())' 2>/dev/null) \
  || die "atheris is not installed: $PY -m pip install -e '.[test]' (or: pip install 'atheris>=2.3')"
# atheris' ASan runtime with libFuzzer linked in (UBSan's handlers included): preloading clang's
# plain libclang_rt.asan instead leaves the native extensions' coverage unseen by the fuzzer.
ASAN_RT=$ATHERIS_DIR/asan_with_fuzzer.so
[ -f "$ASAN_RT" ] || die "$ASAN_RT is missing (an atheris built without clang?): reinstall atheris from its wheel"
INCLUDE=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SUFFIX=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
[ -f "$INCLUDE/Python.h" ] || die "Python.h is missing under $INCLUDE (Debian: apt-get install python3-dev)"

# ---- the sanitized build: the Python packages mirrored as folders of links to their files, and
# every C extension of pyproject.toml ([[tool.setuptools.ext-modules]]) built with sanitizers in
# its place there, so `import agent.decode._scan` finds the sanitized .so. Real folders, never a
# link to a source folder: a .so written through one would replace the in-place build.
SAN=$ROOT/build/sanitize
rm -rf "$SAN"
for pkg in agent detectors; do
  (cd "$ROOT" && find "$pkg" -name __pycache__ -prune -o -type d -print) | while read -r d; do mkdir -p "$SAN/$d"; done
  (cd "$ROOT" && find "$pkg" -name __pycache__ -prune -o -type f ! -name '*.so' -print) \
    | while read -r f; do ln -s "$ROOT/$f" "$SAN/$f"; done
done
CFLAGS=(-shared -fPIC -std=c11 -g -O1 -fno-omit-frame-pointer
        -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -I"$INCLUDE")
EXTS=$($PY - <<'PY'
import tomllib
for ext in tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"].get("ext-modules", []):
    print(ext["name"].replace(".", "/"), *ext["sources"])
PY
)
built=()
while read -r module sources; do
  [ -n "$module" ] || continue
  # shellcheck disable=SC2086 # sources: a space-separated list
  if clang "${CFLAGS[@]}" $sources -o "$SAN/$module$SUFFIX"; then
    built+=("$module")
  else
    case "$module" in
      */_scan|*/_ecdf) die "could not build $sources with sanitizers" ;;  # what the drivers fuzz
      *) echo "fuzz.sh: warning: $sources did not build with sanitizers (no driver needs it)" >&2 ;;
    esac
  fi
done <<<"$EXTS"
echo "fuzz.sh: built ${built[*]} with ASan+UBSan into build/sanitize/ (clang $CLANG_MAJOR)"

export LD_PRELOAD=$ASAN_RT
export PYTHONMALLOC=malloc  # every Python object from malloc, so ASan sees a read past a small bytes object
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1  # CPython keeps memory by design
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH=$SAN${PYTHONPATH:+:$PYTHONPATH}
export DRIFTWARDEN_FUZZ_EXT_DIR=$SAN  # the drivers refuse to run on the unsanitized extensions

if [ "$MODE" = replay ]; then
  [ ${#ARGS[@]} -gt 0 ] || die "--replay needs files (e.g. tests/fuzz/crashes/fuzz_labels/crash-...)"
  rc=0
  for f in "${ARGS[@]}"; do
    driver=$(basename "$(dirname "$f")")
    [ -f "tests/fuzz/$driver.py" ] || die "$f: no driver tests/fuzz/$driver.py (the folder names the driver)"
    echo "== $driver < $f"
    "$PY" "tests/fuzz/$driver.py" -runs=1 "$f" 2>&1 | grep -v '^INFO: Instrumenting' || rc=1
  done
  exit $rc
fi

if [ ${#ARGS[@]} -gt 0 ]; then DRIVERS=("${ARGS[@]}"); else DRIVERS=("${ALL_DRIVERS[@]}"); fi
mkdir -p build/fuzz
failed=()
start=$(date +%s)
for driver in "${DRIVERS[@]}"; do
  [ -f "tests/fuzz/$driver.py" ] || die "no driver tests/fuzz/$driver.py"
  work=build/fuzz/corpus/$driver
  crashes=tests/fuzz/crashes/$driver
  mkdir -p "$work" "$crashes"
  dict=()
  [ "$driver" != fuzz_ecdf ] && dict=(-dict=tests/fuzz/json.dict)
  log=build/fuzz/$driver.log
  before=$(ls "$crashes" | wc -l)
  echo "== $driver: ${SECS}s (log: $log)"
  set +e
  # -len_control=0: full-size inputs from the start (short runs); -timeout: a hang is a finding
  "$PY" "tests/fuzz/$driver.py" "$work" "tests/fuzz/corpus/$driver" "${dict[@]}" \
    -max_total_time="$SECS" -artifact_prefix="$crashes/" -len_control=0 -max_len=8192 \
    -timeout=30 -rss_limit_mb=6144 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  after=$(ls "$crashes" | wc -l)
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | sed 's/^/   /' || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | sed 's/^/   /' || true
  if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
    failed+=("$driver")
    echo "   FAILED (exit $rc): $(grep -E 'Test unit written to' "$log" | sed 's/.*written to //' | tr '\n' ' ')"
    grep -E -m1 -A12 '=== Uncaught Python exception|ERROR: AddressSanitizer|runtime error:|ERROR: libFuzzer' "$log" \
      | sed 's/^/   | /' || tail -20 "$log" | sed 's/^/   | /'
  fi
done
echo "fuzz.sh: ${#DRIVERS[@]} driver(s) in $(( $(date +%s) - start ))s; ${#failed[@]} found a crash or failed ${failed[*]:-}"
[ ${#failed[@]} -eq 0 ]
