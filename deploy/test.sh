#!/usr/bin/env bash
# Sets erd up and runs the whole test suite: unit tests, the integration
# suite against a real `erd serve`, fuzz corpora replays, then the same
# suite again in a separate AddressSanitizer + UBSan build.
#
# usage: deploy/test.sh
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# Warnings are errors in both builds: a release build (-O3) finds
# may-be-uninitialised paths a debug one does not, and the reverse.
deploy/setup.sh build -Dwerror=true
deploy/setup.sh build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0

status=0
meson test -C build --print-errorlogs --num-processes 2 || status=1
meson test -C build-asan --print-errorlogs --num-processes 2 -t 4 || status=1

# One closing line for both builds, counted from meson's own logs.
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"): passed += 1
            elif r == "SKIP": skipped += 1
            else: failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
