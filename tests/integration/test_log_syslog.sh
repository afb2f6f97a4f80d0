#!/bin/sh
# In the background (no -f) chanfs's stderr is /dev/null, so its lines go
# to syslog: facility daemon, ident "chanfs" with the daemon's pid, the
# same text as on stderr, warnings at LOG_WARNING and news at LOG_INFO.
# A vhost-user peer sends a message chanfs rejects; its line must arrive.
#
# Runs in a private mount namespace (unshare -m) whose /dev is a tmpfs
# holding the host's null and fuse nodes and a fake /dev/log: a UNIX
# datagram socket that python3 reads into a file.  Nothing outside the
# namespace sees the fake /dev or the mount.
#
# usage: test_log_syslog.sh CHANFS
set -u
CHANFS=$1
LC_ALL=C
export LC_ALL

if [ "${CHANFS_SYSLOG_NS:-}" != inside ]; then
	if ! unshare -m --propagation private true 2>/dev/null ||
	   ! command -v python3 >/dev/null; then
		echo "1..0 # SKIP needs unshare -m (root) and python3"
		exit 0
	fi
	CHANFS_SYSLOG_NS=inside exec unshare -m --propagation private \
		sh "$0" "$@"
fi

tmp=$(mktemp -d /tmp/chanfs-syslog.XXXXXX) || exit 1
# The real /dev is bound here: only ever rmdir'ed, never removed with -r.
olddev=$(mktemp -d /tmp/chanfs-syslog-dev.XXXXXX) || exit 1
listener=
cleanup() {
	# An unmount ends the daemon whether or not we learnt its pid.
	umount "$tmp/mnt" 2>/dev/null || umount -l "$tmp/mnt" 2>/dev/null
	[ -n "$listener" ] && kill "$listener" 2>/dev/null
	umount -l /dev 2>/dev/null
	umount -l -R "$olddev" 2>/dev/null
	rmdir "$olddev"
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/mnt"
. "$(dirname "$0")/tap.sh"

# wait_for PATTERN: up to 10 s for a line matching the extended regular
# expression in the fake syslog (a bound against hangs, not a timing).
wait_for() {
	i=0
	while [ $i -lt 100 ]; do
		grep -Eq -- "$1" "$tmp/syslog" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

mount --rbind /dev "$olddev" &&
mount -t tmpfs -o mode=755 tmpfs /dev &&
touch /dev/null /dev/fuse &&
mount --bind "$olddev/null" /dev/null &&
mount --bind "$olddev/fuse" /dev/fuse || {
	echo "Bail out! cannot set up a private /dev"
	exit 1
}

python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
' "$tmp/syslog" &
listener=$!
i=0
while [ ! -e "$tmp/syslog.ready" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e "$tmp/syslog.ready" ] || { echo "Bail out! no fake /dev/log"; exit 1; }
: >"$tmp/syslog"

# The foreground part prints to stderr as always; then it detaches.
"$CHANFS" -s "$tmp/vu.sock" "$tmp/mnt" </dev/null >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "fs: mounted on $tmp/mnt" "$tmp/err"; then
	report ok "chanfs goes to the background after mounting"
else
	report fail "chanfs goes to the background (status $rc)"
	sed 's/^/#   /' "$tmp/err"
	exit 1
fi

# A front-end that sends a request no vhost-user version has.
python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(struct.pack("<III", 9999, 1, 0))
s.settimeout(10)
try:
    s.recv(1)
except OSError:
    pass
' "$tmp/vu.sock"

# <28> = LOG_DAEMON (3 << 3) | LOG_WARNING (4); <30> the same with LOG_INFO.
if wait_for '^<28>.* chanfs\[[0-9]+\]: vu: unknown request 9999$'; then
	report ok "the rejected message's line reaches syslog as a warning"
else
	report fail "the rejected message's line reaches syslog as a warning"
fi
# The line names the peer's pid and uid (vu: front-end connected (pid N, uid N)).
if wait_for '^<30>.* chanfs\[[0-9]+\]: vu: .*: front-end connected \(pid [0-9]+, uid [0-9]+\)$'; then
	report ok "informational lines reach syslog at LOG_INFO"
else
	report fail "informational lines reach syslog at LOG_INFO"
fi
pid=$(sed -n 's/.* chanfs\[\([0-9]*\)\]: vu: unknown request 9999$/\1/p' \
	"$tmp/syslog" | head -n 1)
if [ -n "$pid" ] &&
   tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$tmp/mnt"; then
	report ok "the pid in the line is the daemon's"
else
	report fail "the pid in the line is the daemon's (${pid:-none})"
fi
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	if wait_for "^<30>.* chanfs\[$pid\]: fs: SIGTERM: unmounting $tmp/mnt\$"
	then
		report ok "SIGTERM's line reaches syslog"
	else
		report fail "SIGTERM's line reaches syslog"
	fi
fi
sed 's/^/#   syslog: /' "$tmp/syslog"
tap_end
