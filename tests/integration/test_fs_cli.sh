#!/bin/sh
# chanfs's command line: each bad option or value is one line on stderr
# naming it, nothing on stdout, exit status 2, and nothing is mounted;
# --help and --version print to stdout and exit 0.
#
# usage: test_fs_cli.sh CHANFS
set -u
CHANFS=$1
LC_ALL=C
export LC_ALL

tmp=$(mktemp -d /tmp/chanfs-cli.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/mnt"
sock=$tmp/vsock.sock
. "$(dirname "$0")/tap.sh"

# expect_bad WHAT TEXT ARGS...: exit 2, exactly one stderr line containing
# TEXT, empty stdout, no socket left, nothing mounted.
expect_bad() {
	what=$1
	want=$2
	shift 2
	"$CHANFS" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	rc=$?
	lines=$(wc -l <"$tmp/err")
	if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/out" ] &&
	   grep -qF -- "$want" "$tmp/err" && [ ! -e "$sock" ] &&
	   ! awk -v m="$tmp/mnt" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
		report ok "$what"
	else
		report fail "$what (status $rc, $lines stderr lines)"
		sed 's/^/#   /' "$tmp/err" "$tmp/out"
	fi
}

expect_bad "buf-size that is not a size" "--buf-size: 'x' is not a size" \
	--buf-size x -s "$sock" "$tmp/mnt"
expect_bad "buf-size with a negative sign" "--buf-size: '-4K' is not a size" \
	--buf-size=-4K -s "$sock" "$tmp/mnt"
expect_bad "buf-size not a power of two" "--buf-size: 3000 is not a power of two between 4K and 64M" \
	--buf-size 3000 -s "$sock" "$tmp/mnt"
expect_bad "buf-size below 4K" "--buf-size: 2K is not a power of two" \
	--buf-size 2K -s "$sock" "$tmp/mnt"
expect_bad "buf-size above 64M" "--buf-size: 128M is not a power of two" \
	--buf-size 128M -s "$sock" "$tmp/mnt"
expect_bad "buf-size with an unknown suffix" "--buf-size: '4G' is not a size" \
	--buf-size 4G -s "$sock" "$tmp/mnt"
expect_bad "cid that is not a number" "--cid: 'three' is not a number" \
	--cid three -s "$sock" "$tmp/mnt"
expect_bad "reserved cid" "--cid: 2 is out of range (3..4294967294)" \
	--cid 2 -s "$sock" "$tmp/mnt"
expect_bad "cid too large" "--cid: 4294967295 is out of range" \
	--cid 4294967295 -s "$sock" "$tmp/mnt"
expect_bad "connect timeout of zero" "--connect-timeout: 0 is out of range" \
	--connect-timeout 0 -s "$sock" "$tmp/mnt"
expect_bad "connect timeout not a number" "--connect-timeout: '1s' is not a number of ms" \
	--connect-timeout 1s -s "$sock" "$tmp/mnt"
expect_bad "close timeout not a number" "--close-timeout: '' is not a number of ms" \
	--close-timeout= -s "$sock" "$tmp/mnt"
expect_bad "backlog of zero" "--backlog: 0 is out of range" \
	--backlog 0 -s "$sock" "$tmp/mnt"
expect_bad "listen port not a number" "--listen: 'http' is not a port" \
	-l http -s "$sock" "$tmp/mnt"
expect_bad "listen port out of range" "--listen: 4294967295 is out of range" \
	--listen 4294967295 -s "$sock" "$tmp/mnt"
expect_bad "service port not a number" "--service-port: 'x' is not a port" \
	--service-port x -s "$sock" "$tmp/mnt"
expect_bad "service port with a sign" "--service-port: '+5000' is not a port" \
	--service-port +5000 -s "$sock" "$tmp/mnt"
expect_bad "service port out of range" "--service-port: 4294967295 is out of range" \
	--service-port 4294967295 -s "$sock" "$tmp/mnt"
expect_bad "listen on the default service port" "--listen: 5000 is the service port" \
	-l 5000 -s "$sock" "$tmp/mnt"
expect_bad "listen on a chosen service port" "--listen: 6000 is the service port" \
	--service-port 6000 -l 6000 -s "$sock" "$tmp/mnt"
expect_bad "unknown long option" "unknown option '--bogus'" \
	--bogus -s "$sock" "$tmp/mnt"
expect_bad "unknown short option" "unknown option '-x'" \
	-x -s "$sock" "$tmp/mnt"
expect_bad "option without its value" "option '--socket' needs a value" \
	"$tmp/mnt" --socket
expect_bad "missing socket" "--socket is required" \
	"$tmp/mnt"
expect_bad "missing mountpoint" "usage: chanfs" \
	-s "$sock"
expect_bad "two mountpoints" "unexpected argument" \
	-s "$sock" "$tmp/mnt" "$tmp/mnt"
expect_bad "mountpoint that does not exist" "No such file or directory" \
	-s "$sock" "$tmp/nowhere"
expect_bad "mountpoint that is a file" "Not a directory" \
	-s "$sock" "$CHANFS"
expect_bad "unknown FUSE option" "bogus" \
	-f -o bogus -s "$sock" "$tmp/mnt"
# --serial NAME=PATH[,listen]: a bad spec is one line naming what is wrong.
expect_bad "serial spec without =" "--serial 'qga': no '=': expected NAME=PATH[,listen]" \
	--serial qga -s "$sock" "$tmp/mnt"
expect_bad "serial spec with an empty name" "--serial '=/x': empty port NAME" \
	--serial =/x -s "$sock" "$tmp/mnt"
expect_bad "serial name with a slash" "--serial 'a/b=/x': port NAME 'a/b' is not 1 to 255 of [A-Za-z0-9._-]" \
	--serial a/b=/x -s "$sock" "$tmp/mnt"
expect_bad "serial spec with an empty path" "--serial 'qga=': empty PATH" \
	--serial qga= -s "$sock" "$tmp/mnt"
expect_bad "serial spec with an unknown option" "--serial 'qga=/x,server': unknown option ',server'" \
	--serial qga=/x,server -s "$sock" "$tmp/mnt"
expect_bad "serial path longer than a socket address" "a socket address holds at most 107" \
	--serial "qga=$tmp/$(printf '%0100d' 0)" -s "$sock" "$tmp/mnt"
expect_bad "serial port given twice" "--serial 'qga=/b': port qga is given twice" \
	--serial qga=/a --serial qga=/b -s "$sock" "$tmp/mnt"
expect_bad "serial socket given twice" "/a is port one's socket already" \
	--serial one=/a --serial two=/a -s "$sock" "$tmp/mnt"
expect_bad "serial socket inside the mountpoint" "is inside the mountpoint" \
	--serial qga="$tmp/mnt/qga.sock" -s "$sock" "$tmp/mnt"
expect_bad "serial socket that is the vhost-user socket" "is the vhost-user socket" \
	--serial qga="$sock" -s "$sock" "$tmp/mnt"
expect_bad "serial listen socket in a missing directory" "serial qga: $tmp/none/q.sock: cannot listen: No such file or directory" \
	-f --serial qga="$tmp/none/q.sock,listen" -s "$sock" "$tmp/mnt"

# The console device: --console-socket with --port/--console names.
csock=$tmp/console.sock
expect_bad "console port name with a slash" "--port: 'a/b' is not a port name" \
	--console-socket "$csock" --port a/b -s "$sock" "$tmp/mnt"
expect_bad "console port given twice" "--port: port a given twice" \
	--console-socket "$csock" --port a --port a -s "$sock" "$tmp/mnt"
expect_bad "console port named by --console and --port" "--port: port a given twice" \
	--console-socket "$csock" --console a --port a -s "$sock" "$tmp/mnt"
expect_bad "--console given twice" "--console: given twice" \
	--console-socket "$csock" --console a --console b -s "$sock" "$tmp/mnt"
expect_bad "console ports without a console socket" "they need --console-socket" \
	--port a -s "$sock" "$tmp/mnt"
expect_bad "console socket without ports" "--console-socket: no ports" \
	--console-socket "$csock" -s "$sock" "$tmp/mnt"
expect_bad "console socket that is the vhost-user socket" "--console-socket: $sock is the vhost-user socket" \
	--console-socket "$sock" --port a -s "$sock" "$tmp/mnt"
set -- --console-socket "$csock"
i=0
while [ $i -lt 32 ]; do set -- "$@" --port "p$i"; i=$((i + 1)); done
expect_bad "32 console ports" "more than 31 console ports" "$@" -s "$sock" "$tmp/mnt"
expect_bad "console port that is a serial port" "--port: port qga is a --serial port too" \
	--serial qga=/a --console-socket "$csock" --port qga -s "$sock" "$tmp/mnt"
expect_bad "console socket that is the --uds socket" "--console-socket: /u is the --uds socket" \
	--uds /u --console-socket /u --port a -s "$sock" "$tmp/mnt"
expect_bad "console socket inside the mountpoint" "is inside the mountpoint" \
	--console-socket "$tmp/mnt/c.sock" --port a -s "$sock" "$tmp/mnt"
expect_bad "console socket that is a serial socket" "--console-socket: /a is port qga's socket already" \
	--serial qga=/a --console-socket /a --port b -s "$sock" "$tmp/mnt"

if "$CHANFS" --help >"$tmp/out" 2>"$tmp/err" && grep -q -- "--buf-size" "$tmp/out" &&
   [ ! -s "$tmp/err" ]; then
	report ok "--help prints the options and exits 0"
else
	report fail "--help prints the options and exits 0"
fi
if "$CHANFS" -V >"$tmp/out" 2>"$tmp/err" && grep -q "^chanfs [0-9]" "$tmp/out" &&
   [ "$(wc -l <"$tmp/out")" -eq 1 ]; then
	report ok "-V prints one version line and exits 0"
else
	report fail "-V prints one version line and exits 0"
fi

tap_end
