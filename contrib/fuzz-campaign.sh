#!/usr/bin/env bash
# contrib/fuzz-campaign.sh — a fuzzing campaign over every tests/fuzz target:
# build the libFuzzer targets with clang (ASan+UBSan), run each for SECONDS,
# merge what it found into a minimized corpus, and print per target the
# executions, coverage at start and end, corpus size and findings.
#
#   contrib/fuzz-campaign.sh [-j N] [--build DIR] [--save] [--target NAME]...
#                            SECONDS
#
#   SECONDS        how long each target runs
#   -j N           targets run N at a time (default 1)
#   --build DIR    fuzz build directory (default build-fuzz/; reused, so a
#                  campaign continues from the last one's corpora in
#                  DIR/campaign/<name>/corpus)
#   --save         replace tests/fuzz/corpus/<name>/ by the seeds plus the
#                  fewest merged inputs that reach the same edges (counters
#                  off: small enough to commit; only for targets without
#                  findings)
#   --target NAME  run only this target (repeatable; default: all)
#
# Run it under `nice -n 19` on a shared machine.  Findings (crash-, leak-,
# timeout-, oom- files) land in DIR/campaign/<name>/artifacts/; replay one
# with DIR/tests/fuzz/fuzz-<name> FILE.  Exits 1 when any target found
# something or failed to run, 0 otherwise.
set -euo pipefail

usage() {
	sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	exit "${1:-0}"
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
jobs=1
save=0
targets=()
seconds=

while (($#)); do
	case "$1" in
	-j) [[ $# -ge 2 ]] || usage 2; jobs=$2; shift ;;
	--build) [[ $# -ge 2 ]] || usage 2; build=$(realpath -m "$2"); shift ;;
	--save) save=1 ;;
	--target) [[ $# -ge 2 ]] || usage 2; targets+=("$2"); shift ;;
	-h|--help) usage 0 ;;
	-*) echo "fuzz-campaign: unknown option '$1'" >&2; usage 2 ;;
	*) [[ -z "$seconds" ]] || usage 2; seconds=$1 ;;
	esac
	shift
done
if ! [[ "$seconds" =~ ^[0-9]+$ && "$jobs" =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz-campaign: want SECONDS and -j as whole numbers" >&2
	usage 2
fi

if [[ ! -f "$build/build.ninja" ]]; then
	CC=clang meson setup --werror -Dtests=true -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false "$build" "$root"
fi
# Regenerate the build files when meson.build changed (new targets).
ninja -C "$build" build.ninja >/dev/null
if ((${#targets[@]} == 0)); then
	# The targets tests/fuzz defines, by their naming convention.
	mapfile -t targets < <(meson introspect --targets "$build" | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-") \
       and "/tests/fuzz/" in t["defined_in"]:
        print(t["name"][len("fuzz-"):])
' | sort)
fi
if ((${#targets[@]} == 0)); then
	echo "fuzz-campaign: no fuzz-* targets in $build" >&2
	exit 1
fi
if ! out=$(meson compile -C "$build" "${targets[@]/#/fuzz-}" 2>&1); then
	echo "$out" >&2
	echo "fuzz-campaign: build failed in $build" >&2
	exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# Run one target: fuzz, then merge the scratch corpus and the seeds into a
# fresh minimized corpus.  Leaves DIR/campaign/<name>/summary (one line).
run_target() {
	local name=$1 exe=$build/tests/fuzz/fuzz-$1 dir=$build/campaign/$1
	local seeds=$root/tests/fuzz/corpus/$1 status=0 mstatus=0
	local execs cov0 cov1 files bytes findings

	mkdir -p "$dir/corpus" "$dir/artifacts"
	[[ -d "$seeds" ]] || mkdir -p "$seeds"
	# New inputs go to the scratch corpus (libFuzzer writes to the first
	# directory); the seeds stay untouched until --save.
	"$exe" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
		-close_fd_mask=3 -print_final_stats=1 -max_len=4096 \
		-artifact_prefix="$dir/artifacts/" \
		"$dir/corpus" "$seeds" >"$dir/fuzz.log" 2>&1 || status=$?
	# The seeds (named by what they show) stay; merging adds only the
	# inputs that reach features the seeds do not.
	rm -rf "$dir/merged"
	cp -r "$seeds" "$dir/merged"
	"$exe" -merge=1 -timeout=30 -rss_limit_mb=2048 -close_fd_mask=3 \
		-max_len=4096 "$dir/merged" "$dir/corpus" \
		>"$dir/merge.log" 2>&1 || mstatus=$?
	((status)) || status=$mstatus
	# The merged set is the next campaign's starting corpus.
	rm -rf "$dir/corpus"
	cp -r "$dir/merged" "$dir/corpus"

	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -n1)
	cov0=$(sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' "$dir/fuzz.log" | head -n1)
	cov1=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$dir/fuzz.log" | tail -n1)
	files=$(find "$dir/merged" -type f | wc -l)
	bytes=$(du -sb "$dir/merged" | cut -f1)
	findings=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o \
		-name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	if ((status != 0 && findings == 0)); then
		findings=1	# died without an artifact: look at fuzz.log
	fi
	printf '%-10s %12s %9s %9s %7s %10s %8s\n' "$name" "${execs:-?}" \
		"${cov0:-?}" "${cov1:-?}" "$files" "$bytes" "$findings" \
		>"$dir/summary"
	echo "$(date -u +%FT%TZ) $(cat "$dir/summary")" >>"$build/campaign/history"
	if ((save && findings == 0)); then
		rm -rf "$dir/save"
		cp -r "$seeds" "$dir/save"
		"$exe" -merge=1 -use_counters=0 -timeout=30 -rss_limit_mb=2048 \
			-close_fd_mask=3 -max_len=4096 "$dir/save" "$dir/merged" \
			>"$dir/save.log" 2>&1
		rm -rf "$seeds"
		cp -r "$dir/save" "$seeds"
		echo "fuzz-campaign: $name: saved $(find "$seeds" -type f | wc -l) files, $(du -sb "$seeds" | cut -f1) bytes" >&2
	fi
}

running=0
for t in "${targets[@]}"; do
	if [[ ! -x "$build/tests/fuzz/fuzz-$t" ]]; then
		echo "fuzz-campaign: no target fuzz-$t in $build" >&2
		exit 1
	fi
	rm -f "$build/campaign/$t/summary"
	echo "fuzz-campaign: fuzz-$t for ${seconds}s"
	run_target "$t" &
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n || true
		running=$((running - 1))
	fi
done
wait

total=0
bad=0
printf '%-10s %12s %9s %9s %7s %10s %8s\n' target executions cov-start \
	cov-end files bytes findings
for t in "${targets[@]}"; do
	s=$build/campaign/$t/summary
	if [[ ! -f "$s" ]]; then
		printf '%-10s (did not finish)\n' "$t"
		bad=1
		continue
	fi
	cat "$s"
	read -r _ execs _ _ _ _ findings <"$s"
	[[ "$execs" =~ ^[0-9]+$ ]] && total=$((total + execs))
	((findings == 0)) || bad=1
done
echo "fuzz-campaign: $total executions in all"
# Every campaign run on this build directory, so restarts add up.
awk '{ n[$2] += $3; all += $3 } END {
	for (t in n) printf "fuzz-campaign: %s: %d executions over all runs\n", t, n[t]
	printf "fuzz-campaign: %d executions over all runs\n", all
}' "$build/campaign/history" | sort
exit "$bad"
