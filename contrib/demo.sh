#!/usr/bin/env bash
# contrib/demo.sh [--check] [MOUNTPOINT] — chanfs in one command, on a
# fresh machine: installs the dependencies (contrib/deps.sh), builds chanfs
# and the demo guest (a Debian kernel and a busybox initramfs, built once
# and cached), starts chanfs on MOUNTPOINT (default /mnt/guest), boots the
# guest under QEMU (TCG; CHANFS_ACCEL=kvm to use KVM) and prints what to
# try.  Ctrl-C shuts the guest down, unmounts and exits.
#
# --check: instead of waiting, run the printed commands (echo, the 1 MiB
# digest, a console line, an accept on port 5555), shut down, and exit 0
# when all worked and the guest and chanfs ended cleanly, else 1.
#
# The guest serves:   vsock/1234  echo         vsock/1235  1 MiB source
#                     vsock/1236  its console  (what you write shows there)
# and connects to host port 5555 every second with a line of text.
#
# Environment: CHANFS_BUILD (build directory, default build/ in the
# repository), CHANFS_DEMO_CID (guest CID, default 3), CHANFS_ACCEL (tcg
# or kvm, default tcg), CHANFS_DEMO_BOOT_WAIT (seconds for the guest to
# reach /init, default 20).  With CHANFS_DEMO_PREBUILT=1 nothing is
# installed or built: CHANFS (the chanfs binary), CHANFS_GUEST (the static
# guest helper) and E2E_IMAGE_DIR (the image cache) name what to use, as
# the e2e suite sets them.  When the demo fails, its logs (the guest's
# console, QEMU's and chanfs's) are kept and their path printed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
check=0
case "${1:-}" in
-h|--help) sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
--check) check=1; shift ;;
esac
mnt=${1:-/mnt/guest}
build=${CHANFS_BUILD:-$root/build}
cid=${CHANFS_DEMO_CID:-3}
accel=${CHANFS_ACCEL:-tcg}
boot_wait=${CHANFS_DEMO_BOOT_WAIT:-20}
mem=256M
run=
failed=0

say() { echo "demo: $*"; }
die() { echo "demo: error: $*" >&2; failed=1; exit 1; }

case "$accel" in
tcg|kvm) ;;
*) die "CHANFS_ACCEL=$accel: tcg or kvm" ;;
esac

# ---- install, build ----
if [[ "${CHANFS_DEMO_PREBUILT:-}" == 1 ]]; then
	chanfs=${CHANFS:?CHANFS_DEMO_PREBUILT=1 needs CHANFS}
	helper=${CHANFS_GUEST:?CHANFS_DEMO_PREBUILT=1 needs CHANFS_GUEST}
	helper_static=$helper
	image=${E2E_IMAGE_DIR:?CHANFS_DEMO_PREBUILT=1 needs E2E_IMAGE_DIR}
else
	"$root/contrib/deps.sh"
	if [[ ! -f "$build/build.ninja" ]]; then
		meson setup -Dtests=true "$build" "$root" >/dev/null
	else
		meson configure -Dtests=true "$build" >/dev/null	# the helper is built there
	fi
	say "building chanfs and the guest helper in $build"
	ninja -C "$build" chanfs tests/e2e/chanfs-guest-static tests/e2e/chanfs-guest >/dev/null ||
		die "the build failed (ninja -C $build)"
	chanfs=$build/chanfs
	helper=$build/tests/e2e/chanfs-guest
	helper_static=$build/tests/e2e/chanfs-guest-static
	image=$build/tests/e2e/image
fi
say "building the guest image (cached in $image)"
"$root/tests/e2e/build-image.sh" "$helper_static" "$image" |
	sed 's/^/demo: /'

# ---- start ----
mountpoint -q "$mnt" 2>/dev/null && die "$mnt is already a mount point"
made_mnt=0
if [[ ! -d "$mnt" ]]; then
	mkdir -p "$mnt"
	made_mnt=1
fi
run=$(mktemp -d /tmp/chanfs-demo.XXXXXX)
sock=$run/vsock.sock
console=$run/console.log
chanfs_pid=
qemu_pid=
guest_up=0

# shutdown: power the guest off through its control port (QEMU then
# exits), end chanfs with SIGTERM (it unmounts).  Returns 1 when either
# had to be killed, chanfs did not exit 0 or the mount stayed.
shutdown() {
	local i rc=0 st=0
	if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null && ((!guest_up)); then
		say "stopping QEMU (the guest never came up)"
		kill -TERM "$qemu_pid" 2>/dev/null || true
	elif [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		say "shutting the guest down"
		# The guest's control port: /init powers off on this word.
		timeout 10 sh -c 'echo poweroff > "$1"' sh "$mnt/vsock/9999" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$qemu_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$qemu_pid" 2>/dev/null; then
			say "the guest did not power off; stopping QEMU"
			kill -TERM "$qemu_pid" 2>/dev/null || true
			rc=1
		else
			say "the guest powered off"
		fi
	fi
	[[ -n "$qemu_pid" ]] && wait "$qemu_pid" 2>/dev/null
	qemu_pid=
	if [[ -n "$chanfs_pid" ]] && kill -0 "$chanfs_pid" 2>/dev/null; then
		say "unmounting $mnt"
		kill -TERM "$chanfs_pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$chanfs_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$chanfs_pid" 2>/dev/null; then
			say "chanfs did not end on SIGTERM; killing it"
			kill -KILL "$chanfs_pid" 2>/dev/null || true
		fi
	fi
	if [[ -n "$chanfs_pid" ]]; then
		wait "$chanfs_pid" 2>/dev/null || st=$?
		((st == 0)) || { say "chanfs ended with status $st"; rc=1; }
	fi
	chanfs_pid=
	if mountpoint -q "$mnt" 2>/dev/null; then
		say "$mnt is still mounted; unmounting it"
		fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
		rc=1
	fi
	return $rc
}

# On failure keep the logs and show their ends: the console says how far
# the guest came.
show_logs() {
	local f
	for f in "$console" "$run/qemu.log" "$run/chanfs.log"; do
		[[ -s "$f" ]] || { say "$f: empty"; continue; }
		say "$f (last 20 lines):"
		tail -n 20 "$f" | sed 's/^/    /'
	done
	say "the logs are kept in $run"
}

cleanup() {
	local rc=$?
	trap - INT TERM EXIT
	echo
	shutdown || true
	((made_mnt)) && rmdir "$mnt" 2>/dev/null
	if [[ -n "$run" ]]; then
		if ((failed || rc != 0)); then
			show_logs
		else
			rm -rf "$run"
		fi
	fi
	say "done"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Their own sessions: Ctrl-C reaches this script only, which then shuts
# the guest down in order.
setsid "$chanfs" -f -s "$sock" --cid "$cid" -l 5555 "$mnt" 2>"$run/chanfs.log" &
chanfs_pid=$!
for ((i = 0; i < 300; i++)); do
	mountpoint -q "$mnt" && [[ -S "$sock" ]] && break
	kill -0 "$chanfs_pid" 2>/dev/null || die "chanfs did not start"
	sleep 0.1
done
mountpoint -q "$mnt" || die "chanfs did not mount $mnt"

if [[ "$accel" == kvm ]]; then
	[[ -w /dev/kvm ]] || die "CHANFS_ACCEL=kvm, but /dev/kvm is not there or not writable"
	say "booting the demo guest (KVM, as CHANFS_ACCEL asks)"
else
	say "booting the demo guest (TCG; CHANFS_ACCEL=kvm to use KVM)"
fi
: >"$console"
setsid qemu-system-x86_64 -machine q35 -accel "$accel" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-object memory-backend-memfd,id=mem,size="$mem",share=on \
	-numa node,memdev=mem \
	-chardev socket,id=vsock0,path="$sock" \
	-device vhost-user-vsock-pci,chardev=vsock0 \
	-serial file:"$console" \
	-kernel "$image/vmlinux" -initrd "$image/initramfs.cpio" \
	-append "console=ttyS0 quiet panic=-1 chanfs.scenario=demo" \
	>"$run/qemu.log" 2>&1 &
qemu_pid=$!
# guest_wait TEXT SECONDS: until the console shows TEXT; fails when QEMU
# exits, the guest reports a failure or the time is up.
guest_wait() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		grep -q "$1" "$console" 2>/dev/null && return 0
		kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited before the guest printed '$1'"
		grep -q -e 'Kernel panic' -e 'chanfs-e2e: FAIL' "$console" &&
			die "the guest failed: $(grep -m 1 -e 'Kernel panic' -e 'chanfs-e2e: FAIL' "$console")"
		sleep 0.1
	done
	return 1
}
if ! guest_wait 'chanfs-e2e: init' "$boot_wait"; then
	if [[ ! -s "$console" ]]; then
		why="its console is empty: the kernel never ran"
		[[ "$accel" == kvm ]] &&
			why="$why (KVM: /dev/kvm exists but cannot run this guest here; leave CHANFS_ACCEL unset for TCG)"
	else
		why="the kernel started but /init did not"
	fi
	die "the guest did not reach /init within ${boot_wait}s ($accel): $why"
fi
guest_wait 'chanfs-e2e: ready' 120 || die "the guest reached /init but its services did not start"
guest_up=1

last="Ctrl-C here shuts the guest down, unmounts $mnt and exits."
((check)) && last="--check: running each of them now, then shutting down."
cat <<EOF

  chanfs serves the demo guest (CID $cid) on $mnt.
  Try, in another terminal:

  # the device and every connection
    cat $mnt/status
  # connect to the guest's echo service; one fd reads and writes
    exec 3<>$mnt/vsock/1234
    echo hello >&3; read -r line <&3; echo "\$line"
    exec 3>&-
  # 1 MiB from the guest, to EOF; the same digest as the second line
    cat $mnt/vsock/1235 | sha256sum
    $helper gen 1M | sha256sum
  # a line to the guest's console
    echo "hi, guest" > $mnt/vsock/1236; tail $console
  # accept the guest's next connection to host port 5555: it says hello
    cat $mnt/vsock/listen/5555

  $last

EOF

if ((check)); then
	exit_status=0
	# check WHAT COMMAND...: one result line; any failure fails the run.
	check() {
		local what=$1
		shift
		if "$@"; then
			say "ok: $what"
		else
			say "FAILED: $what"
			exit_status=1
		fi
	}
	# Each command as printed above, bounded so that a hang is a failure.
	status_shows_cid() {
		grep -q "guest cid $cid," "$mnt/status"
	}
	echo_works() {
		[[ "$(timeout 30 bash -c 'exec 3<>"$1"; echo hello >&3
			read -r line <&3; echo "$line"' bash "$mnt/vsock/1234")" == hello ]]
	}
	source_digest_matches() {
		local got want
		got=$(timeout 60 cat "$mnt/vsock/1235" | sha256sum) || return 1
		want=$("$helper" gen 1M | sha256sum)
		[[ "$got" == "$want" ]]
	}
	console_shows_line() {
		local i
		echo "hi, guest $$" > "$mnt/vsock/1236" || return 1
		for ((i = 0; i < 300; i++)); do
			grep -q "hi, guest $$" "$console" && return 0
			sleep 0.1
		done
		return 1
	}
	listen_accepts_hello() {
		local line
		line=$(timeout 30 bash -c 'read -r line < "$1" && echo "$line"' \
			bash "$mnt/vsock/listen/5555") || return 1
		[[ "$line" == "hello "[0-9]*" from the guest"* ]]
	}
	check "status shows the guest's CID" status_shows_cid
	check "a line through vsock/1234 comes back" echo_works
	check "vsock/1235's 1 MiB has the helper's digest" source_digest_matches
	check "a line to vsock/1236 shows on the console" console_shows_line
	check "vsock/listen/5555 accepts the guest's hello" listen_accepts_hello
	if ! shutdown; then
		say "FAILED: a clean shutdown"
		exit_status=1
	fi
	if grep -q -e 'Sanitizer' -e 'runtime error:' "$run/chanfs.log"; then
		say "FAILED: chanfs's log has a sanitizer report"
		exit_status=1
	fi
	((exit_status == 0)) || failed=1
	exit "$exit_status"
fi

# Until Ctrl-C, or until QEMU or chanfs ends on its own.
while kill -0 "$qemu_pid" 2>/dev/null && kill -0 "$chanfs_pid" 2>/dev/null; do
	sleep 1 &
	wait $! || true
done
kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited on its own"
kill -0 "$chanfs_pid" 2>/dev/null && exit 0
die "chanfs exited on its own"
