# tap.sh — TAP output for the shell tests, sourced: `report ok|fail WHAT`
# prints one numbered result (after a failure it runs tap_on_fail when the
# test defines it); `tap_end` prints the plan and fails if any test did.
n=0
fails=0
report() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		fails=$((fails + 1))
		if command -v tap_on_fail >/dev/null; then
			tap_on_fail
		fi
	fi
}
tap_end() {
	echo "1..$n"
	[ "$fails" -eq 0 ]
}
