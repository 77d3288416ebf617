#!/usr/bin/env bash
# Build trackcore._core with AddressSanitizer + UndefinedBehaviorSanitizer in a private copy of the
# repository (the shared in-place build is never touched) and run tests against that build.
#
# Usage: tests/reliability/scripts/run_sanitizers.sh [pytest args...]
#   default pytest args: tests/sim tests/reco tests/geometry tests/reliability and the host builds of the
#   CUDA kernels (tests/backends/test_cupy_ckf.py, test_cupy_simulation.py, test_cupy_backend.py) -q
#   (with SANITIZER=thread: the tests of the kernels' worker threads)
# Env: SANITIZER (address, the default: ASan + UBSan; or thread: ThreadSanitizer, data races between
#      the seeding, CKF and transport workers), TRACKCORE_SANITIZE_DIR (copy location, default
#      /tmp/trackcore-sanitize/main), TRACKCORE_BUILD_JOBS (parallel compile jobs, default: all cores).
# Exit status: pytest's, or 3 when a sanitizer wrote any report (reports are in $WORK/sanitizer-logs).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
WORK=${TRACKCORE_SANITIZE_DIR:-/tmp/trackcore-sanitize/main}
PY="$REPO/.venv/bin/python"
LOGS="$WORK/sanitizer-logs"

# Copy sources only: no venv, no git data, no shared build products (they would be stale or clobbered).
[ "$WORK" != "$REPO" ] && [ "$WORK" != / ] || { echo "refusing TRACKCORE_SANITIZE_DIR=$WORK" >&2; exit 2; }
rm -rf "$WORK" && mkdir -p "$WORK"
tar -C "$REPO" -cf - --exclude=./.venv --exclude=./.git --exclude=./build --exclude='./trackcore/_core*.so' \
    --exclude='__pycache__' --exclude=.pytest_cache --exclude=.hypothesis . | tar -C "$WORK" -xf -
# Tests find the real TrackML data in ../shared beside the repository: give the copy the same neighbour.
if [ -d "$REPO/../shared" ] && [ ! -e "$(dirname "$WORK")/shared" ]; then
    ln -s "$(cd "$REPO/../shared" && pwd)" "$(dirname "$WORK")/shared"
fi
cd "$WORK"
echo "== building sanitised _core in $WORK (build dir $WORK/build)"
# setup.py's -fsanitize=undefined leaves out float-cast-overflow (double -> integer casts out of
# range, e.g. cell and bin indices); CFLAGS/CXXFLAGS (newer setuptools compiles C++ with CXXFLAGS) add it.
if [ "${SANITIZER:-address}" = thread ]; then
    TRACKCORE_SANITIZE=thread "$PY" setup.py build_ext --inplace -q --build-temp "$WORK/build/temp"
else
    CFLAGS="${CFLAGS:-} -fsanitize=float-cast-overflow" CXXFLAGS="${CXXFLAGS:-} -fsanitize=float-cast-overflow" TRACKCORE_SANITIZE=1 "$PY" setup.py build_ext --inplace -q --build-temp "$WORK/build/temp"
fi

rm -rf "$LOGS" && mkdir -p "$LOGS"
if [ "${SANITIZER:-address}" = thread ]; then
    # Only the kernels' own threads run instrumented code; Python's are not watched.
    export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)"
    export TSAN_OPTIONS="halt_on_error=0:report_signal_unsafe=0:log_path=$LOGS/tsan"
    [ "$#" -eq 0 ] && set -- tests/reco/test_ckf_threads.py tests/sim/test_transport_threads.py -q -p no:cacheprovider
else
    # Python itself is not instrumented, so the ASan runtime must be loaded first; leak checking of the
    # interpreter is noise (Python never frees some of its arenas), hence detect_leaks=0.
    export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:log_path=$LOGS/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$LOGS/ubsan"
    # The host builds of the CUDA kernels (the GPU CKF's fixed-size buffers among them) get the same checks.
    export TRACKCORE_EMU_SANITIZE="address,undefined,float-cast-overflow"
fi
export PYTHONPATH="$WORK"      # before the editable install's finder: import the sanitised copy
export PYTHONDONTWRITEBYTECODE=1

"$PY" -c "import trackcore._core as c, sys; assert c.__file__.startswith('$WORK'), c.__file__; print('== using', c.__file__)"

if [ "$#" -eq 0 ]; then
    # The parquet case of the kill-during-write test forks a process that runs pyarrow's and ASan's
    # threads: its child can deadlock on a lock one of them held at fork (seen: it hangs under ASan,
    # never in the normal suite, where it runs).
    set -- tests/sim tests/reco tests/geometry tests/reliability tests/backends/test_cupy_ckf.py tests/backends/test_cupy_simulation.py \
        tests/backends/test_cupy_backend.py -q -p no:cacheprovider \
        --deselect "tests/reliability/test_interrupt.py::test_sigkill_during_write_leaves_a_complete_version[parquet]"
fi
status=0
"$PY" -m pytest "$@" || status=$?

reports=$(find "$LOGS" -type f | wc -l)
echo "== sanitizer report files: $reports (in $LOGS)"
if [ "$reports" -gt 0 ]; then
    grep -h -E "runtime error|ERROR: AddressSanitizer|WARNING: ThreadSanitizer|SUMMARY" "$LOGS"/* | sort | uniq -c | head -50
    [ "$status" -eq 0 ] && status=3
fi
exit "$status"
