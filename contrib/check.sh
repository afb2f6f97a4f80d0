#!/usr/bin/env bash
# contrib/check.sh — from a fresh machine: install the dependencies, build
# chanfs in a fresh build directory with warnings as errors, run the test
# suites, and print one last line "N passed, N failed[, N skipped]".
# Exits non-zero when anything failed (or nothing ran).
#
#   contrib/check.sh [--sanitize] [--fuzz SECONDS] [--suite NAME]...
#
#   --sanitize      build and test with ASan+UBSan (build-check-san/)
#   --fuzz SECONDS  also build the libFuzzer targets with clang (build-fuzz/)
#                   and run each tests/fuzz target for SECONDS over its
#                   corpus tests/fuzz/corpus/<name>/; each run counts as a
#                   test in the final line
#   --suite NAME    run only this meson suite (repeatable; default: all)
#
# Build directories live in the repository root and are recreated each run.
set -euo pipefail

usage() {
	sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	exit "${1:-0}"
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=0
fuzz_seconds=0
suites=()

while (($#)); do
	case "$1" in
	--sanitize) sanitize=1 ;;
	--fuzz) [[ $# -ge 2 ]] || usage 2; fuzz_seconds=$2; shift ;;
	--fuzz=*) fuzz_seconds=${1#--fuzz=} ;;
	--suite) [[ $# -ge 2 ]] || usage 2; suites+=("$2"); shift ;;
	--suite=*) suites+=("${1#--suite=}") ;;
	-h|--help) usage 0 ;;
	*) echo "check: unknown argument '$1'" >&2; usage 2 ;;
	esac
	shift
done
if ! [[ "$fuzz_seconds" =~ ^[0-9]+$ ]]; then
	echo "check: --fuzz wants a whole number of seconds, not '$fuzz_seconds'" >&2
	exit 2
fi

"$root/contrib/deps.sh"

# Sanitizer findings must fail the test that hit them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

# ---- build and test ----
setup_args=(--werror -Dtests=true)
# --no-rebuild: test exactly what was just built.
test_args=(--no-rebuild --num-processes 2 --print-errorlogs)
if ((sanitize)); then
	build=$root/build-check-san
	setup_args+=(-Db_sanitize=address,undefined -Db_lundef=false)
	test_args+=(--timeout-multiplier 10)
else
	build=$root/build-check
	test_args+=(--timeout-multiplier 2)
fi
for s in "${suites[@]}"; do
	test_args+=(--suite "$s")
done

rm -rf "$build"
if ! meson setup "${setup_args[@]}" "$build" "$root" ||
   ! meson compile -C "$build"; then
	echo "check: build failed in $build" >&2
	exit 1
fi

test_status=0
meson test -C "$build" "${test_args[@]}" || test_status=$?

# ---- fuzz ----
fuzz_passed=0
fuzz_failed=0
if ((fuzz_seconds > 0)); then
	fbuild=$root/build-fuzz
	fuzzers=()
	rm -rf "$fbuild"
	# A fuzz build that fails counts as one failed test; the suites'
	# results above still get their summary.
	if ! CC=clang meson setup --werror -Dtests=true -Dfuzz=true \
	        -Db_sanitize=address,undefined -Db_lundef=false \
	        "$fbuild" "$root"; then
		echo "check: fuzz build setup failed in $fbuild" >&2
		fuzz_failed=1
	else
		# The targets tests/fuzz defines, by their naming convention.
		mapfile -t fuzzers < <(meson introspect --targets "$fbuild" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-") \
       and "/tests/fuzz/" in t["defined_in"]:
        print(t["name"])
')
		if ((${#fuzzers[@]} == 0)); then
			echo "check: no fuzz-* targets defined in tests/fuzz" >&2
			fuzz_failed=1
		elif ! meson compile -C "$fbuild" "${fuzzers[@]}"; then
			echo "check: fuzz build failed in $fbuild" >&2
			fuzz_failed=1
			fuzzers=()
		fi
	fi
	for exe in "$fbuild"/tests/fuzz/fuzz-*; do
		((${#fuzzers[@]})) || break
		[[ -x "$exe" && -f "$exe" ]] || continue
		name=${exe##*/fuzz-}
		seeds=$root/tests/fuzz/corpus/$name
		# New inputs go to a scratch corpus first in the list (libFuzzer
		# writes to the first directory); the seeds stay untouched.
		work=$fbuild/corpus/$name
		mkdir -p "$work" "$fbuild/artifacts"
		dirs=("$work")
		if [[ -d "$seeds" ]]; then
			dirs+=("$seeds")
		else
			echo "check: fuzz-$name: no corpus at $seeds" >&2
		fi
		echo "check: fuzz-$name for ${fuzz_seconds}s"
		if "$exe" -max_total_time="$fuzz_seconds" -timeout=30 \
		        -close_fd_mask=2 -print_final_stats=1 \
		        -artifact_prefix="$fbuild/artifacts/$name-" "${dirs[@]}"; then
			fuzz_passed=$((fuzz_passed + 1))
		else
			echo "check: fuzz-$name FAILED (artifacts in $fbuild/artifacts)" >&2
			fuzz_failed=$((fuzz_failed + 1))
		fi
	done
fi

# ---- summary ----
python3 - "$build/meson-logs/testlog.json" "$test_status" \
	"$fuzz_passed" "$fuzz_failed" <<'EOF'
import json, os, sys

log, status, fpass, ffail = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
passed = failed = skipped = 0
# An expected failure is the test passing; an unexpected pass is a failure.
PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}
if os.path.exists(log):
    with open(log) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result", "ERROR")
            if result in PASS:
                passed += 1
            elif result in SKIP:
                skipped += 1
            else:
                failed += 1
passed += fpass
failed += ffail
if status != 0 and failed == 0:
    # meson test itself failed without recording a failed test.
    print("check: meson test exited with status %d" % status, file=sys.stderr)
    failed = 1
if passed + failed == 0:
    print("check: no tests ran", file=sys.stderr)
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(1 if failed or passed + failed == 0 else 0)
EOF
