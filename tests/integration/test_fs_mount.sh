#!/bin/sh
# chanfs mounted with no VMM connected: the tree, modes and owner, status,
# the errors a file open gives without a guest, a blocked open killed by
# SIGINT, and every way the daemon ends (SIGTERM, SIGINT, fusermount3 -u,
# SIGKILL with auto_unmount, background mode) leaving no mount behind.
#
# usage: test_fs_mount.sh CHANFS          (needs /dev/fuse and fusermount3)
#
# Waits are for conditions, bounded only to turn a hang into a failure.
set -u
CHANFS=$1
LC_ALL=C
export LC_ALL

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "1..0 # SKIP no /dev/fuse or fusermount3"
	exit 77
fi

tmp=$(mktemp -d /tmp/chanfs-mount.XXXXXX) || exit 1
mnt=$tmp/mnt
sock=$tmp/vsock.sock
mkdir "$mnt"
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	mounted && fusermount3 -u -z "$mnt" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

. "$(dirname "$0")/tap.sh"
tap_on_fail() {
	[ -f "$tmp/log" ] && sed 's/^/#   /' "$tmp/log"
}
check() {	# check WHAT COMMAND...
	what=$1
	shift
	if "$@"; then report ok "$what"; else report fail "$what"; fi
}

mounted() {
	awk -v m="$mnt" '$2 == m { f = 1 } END { exit !f }' /proc/mounts
}
not_mounted() {
	! mounted
}
# until COMMAND...: retry for up to 20 s.
until_true() {
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ "$i" -ge 400 ] && return 1
		sleep 0.05
	done
}
gone() {
	! kill -0 "$1" 2>/dev/null
}

# start ARGS...: chanfs in the foreground (as a child), mounted.
start() {
	"$CHANFS" -f -s "$sock" "$@" "$mnt" 2>"$tmp/log" &
	pid=$!
	until_true mounted
}
# stop_with SIGNAL: the daemon exits 0 and leaves nothing behind.
stop_with() {
	kill -"$1" "$pid"
	wait "$pid"
	rc=$?
	pid=
	[ "$rc" -eq 0 ] && not_mounted && [ ! -e "$sock" ]
}

# The process is blocked in a FUSE request made by the given syscall.
blocked_in() {	# blocked_in PID SYSCALL-NUMBER
	[ "$(cat /proc/"$1"/wchan 2>/dev/null)" = request_wait_answer ] &&
	[ "$(cut -d' ' -f1 /proc/"$1"/syscall 2>/dev/null)" = "$2" ]
}

# --- the tree ----------------------------------------------------------------
start --cid 42 -l 7777
check "mounts and serves the tree" mounted

check "root lists services, status and vsock" \
	[ "$(ls -a "$mnt" | tr '\n' ' ')" = ". .. services status vsock " ]
check "services lists nothing while no guest connection waits" \
	[ "$(ls -a "$mnt/services" | tr '\n' ' ')" = ". .. " ]
check "vsock lists listen only" \
	[ "$(ls -a "$mnt/vsock" | tr '\n' ' ')" = ". .. listen " ]
check "vsock/listen lists the ports listening (-l 7777)" \
	[ "$(ls -a "$mnt/vsock/listen" | tr '\n' ' ')" = ". .. 7777 " ]

me="$(id -u) $(id -g)"
check "directories are 0700 and the mounting user's" \
	[ "$(stat -c '%a %u %g' "$mnt" "$mnt/vsock" "$mnt/vsock/listen" | sort -u)" = "700 $me" ]
check "connection files are 0600 regular files of the mounting user" \
	[ "$(stat -c '%a %u %g %F' "$mnt/vsock/1234" "$mnt/vsock/listen/5000")" = "600 $me regular file
600 $me regular file" ]
# The largest write(2): no write goes past it, so writers of one file
# reach chanfs in parallel instead of queueing in the kernel's inode lock.
check "connection files report a size of 2147479552" \
	[ "$(stat -c '%s' "$mnt/vsock/1234" "$mnt/vsock/listen/5000" | sort -u)" = 2147479552 ]
check "status is read-only" [ "$(stat -c '%a %u %g' "$mnt/status")" = "400 $me" ]
i1=$(stat -c %i "$mnt/vsock/1234")
i2=$(stat -c %i "$mnt/vsock/1234")
check "each lookup of a port name is a new inode" [ "$i1" != "$i2" ]
check "a name that is not a port does not exist" sh -c "! stat '$mnt/vsock/http' 2>/dev/null"
check "a port with a leading zero does not exist" sh -c "! stat '$mnt/vsock/0123' 2>/dev/null"
check "no name can be created" sh -c "! touch '$mnt/new' 2>/dev/null && ! mkdir '$mnt/vsock/d' 2>/dev/null"

# --- status --------------------------------------------------------------------
timeout 10 cat "$mnt/status" >"$tmp/status" 2>&1
check "status names chanfs, the guest CID and the channel count" \
	sh -c "head -1 '$tmp/status' | grep -q '^chanfs ' && grep -q 'cid 42' '$tmp/status' &&
	       grep -q '^channels 0$' '$tmp/status'"
check "status shows the port listening from -l" grep -q 7777 "$tmp/status"
check "status reads the same in small pieces" \
	sh -c "dd if='$mnt/status' bs=7 2>/dev/null | cmp -s - '$tmp/status'"
check "status cannot be written" \
	sh -c "! echo x 2>/dev/null >'$mnt/status'"

# --- opens without a guest --------------------------------------------------
timeout 10 cat "$mnt/vsock/1234" >/dev/null 2>"$tmp/err"
rc=$?
check "connect with no VMM fails at once with ENOTCONN" \
	sh -c "[ $rc -eq 1 ] && grep -q 'Transport endpoint is not connected' '$tmp/err'"
timeout 10 dd if="$mnt/vsock/listen/5000" iflag=nonblock count=1 >/dev/null 2>"$tmp/err"
rc=$?
check "O_NONBLOCK accept with nobody waiting fails with EAGAIN" \
	sh -c "[ $rc -eq 1 ] && grep -q 'Resource temporarily unavailable' '$tmp/err'"

# A blocked open (accept with nobody connecting) killed by SIGINT exits at
# once; cat gets the default SIGINT action even in this non-interactive
# shell.
env --default-signal=INT cat "$mnt/vsock/listen/5001" >/dev/null 2>&1 &
cat_pid=$!
if until_true blocked_in "$cat_pid" 257; then
	kill -INT "$cat_pid"
	wait "$cat_pid"
	rc=$?
	check "a cat blocked in open is ended by SIGINT" [ "$rc" -eq 130 ]
else
	kill -KILL "$cat_pid"
	report fail "a cat blocked in open is ended by SIGINT (never blocked)"
fi
check "the daemon serves on after the interrupt" \
	sh -c "timeout 10 cat '$mnt/status' | grep -q '^channels 0$'"

check "SIGTERM unmounts, removes the socket and exits 0" stop_with TERM

# --- other endings -------------------------------------------------------------
start
check "SIGINT unmounts and exits 0" stop_with INT

start
fusermount3 -u "$mnt"
wait "$pid"
rc=$?
pid=
check "fusermount3 -u ends the daemon with status 0" \
	sh -c "[ $rc -eq 0 ] && [ ! -e '$sock' ]"
check "and leaves the mountpoint clean" not_mounted

start -o auto_unmount
# The mount shows before fusermount3 has handed chanfs the fuse fd and
# begun to watch it; a SIGKILL in between is fusermount3's race, not a
# promise of chanfs's.  Kill a daemon that serves.
until_true sh -c "timeout 5 cat '$mnt/status' >/dev/null 2>&1"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
pid=
check "SIGKILL with -o auto_unmount leaves no dead mount" until_true not_mounted

# Without -f chanfs returns once mounted, and the daemon stays.
"$CHANFS" -s "$sock" "$mnt" 2>"$tmp/log"
rc=$?
check "in the background chanfs returns 0 once mounted" \
	sh -c "[ $rc -eq 0 ] && awk -v m='$mnt' '\$2 == m { f = 1 } END { exit !f }' /proc/mounts"
check "the background daemon serves the tree" \
	sh -c "timeout 10 cat '$mnt/status' | grep -q '^channels 0$'"
fusermount3 -u "$mnt"
check "fusermount3 -u ends the background daemon (its socket goes)" \
	until_true sh -c "[ ! -e '$sock' ]"

tap_end
