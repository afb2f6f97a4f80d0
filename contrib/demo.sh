#!/usr/bin/env bash
# contrib/demo.sh [MOUNTPOINT] — chanfs in one command, on a fresh machine:
# installs the dependencies (contrib/deps.sh), builds chanfs and the demo
# guest (a Debian kernel and a busybox initramfs, built once and cached),
# starts chanfs on MOUNTPOINT (default /mnt/guest), boots the guest under
# QEMU (KVM when /dev/kvm is usable, TCG otherwise) and prints what to try.
# Ctrl-C shuts the guest down, unmounts and exits.
#
# The guest serves:   vsock/1234  echo         vsock/1235  1 MiB source
#                     vsock/1236  its console  (what you write shows there)
# and connects to host port 5555 every second with a line of text.
#
# Environment: CHANFS_BUILD (build directory, default build/ in the
# repository), CHANFS_DEMO_CID (guest CID, default 3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mnt=${1:-/mnt/guest}
build=${CHANFS_BUILD:-$root/build}
cid=${CHANFS_DEMO_CID:-3}
mem=256M

say() { echo "demo: $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

case "${1:-}" in
-h|--help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
esac

# ---- install, build ----
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
image=$build/tests/e2e/image
say "building the guest image (cached in $image)"
"$root/tests/e2e/build-image.sh" "$build/tests/e2e/chanfs-guest-static" "$image" |
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

cleanup() {
	local i
	trap - INT TERM EXIT
	echo
	if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
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
		else
			say "the guest powered off"
		fi
	fi
	[[ -n "$qemu_pid" ]] && wait "$qemu_pid" 2>/dev/null
	if [[ -n "$chanfs_pid" ]] && kill -0 "$chanfs_pid" 2>/dev/null; then
		say "unmounting $mnt"
		kill -TERM "$chanfs_pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$chanfs_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$chanfs_pid" 2>/dev/null || true
	fi
	[[ -n "$chanfs_pid" ]] && wait "$chanfs_pid" 2>/dev/null
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	((made_mnt)) && rmdir "$mnt" 2>/dev/null
	rm -rf "$run"
	say "done"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Their own sessions: Ctrl-C reaches this script only, which then shuts
# the guest down in order.
setsid "$chanfs" -f -s "$sock" --cid "$cid" -l 5555 "$mnt" 2>"$run/chanfs.log" &
chanfs_pid=$!
for ((i = 0; i < 300; i++)); do
	mountpoint -q "$mnt" && [[ -S "$sock" ]] && break
	kill -0 "$chanfs_pid" 2>/dev/null || { cat "$run/chanfs.log"; die "chanfs did not start"; }
	sleep 0.1
done
mountpoint -q "$mnt" || die "chanfs did not mount $mnt"

accel=tcg
if [[ -w /dev/kvm ]]; then
	accel=kvm
fi
say "booting the demo guest ($accel)"
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
for ((i = 0; i < 1200; i++)); do
	grep -q 'chanfs-e2e: ready' "$console" 2>/dev/null && break
	kill -0 "$qemu_pid" 2>/dev/null || { cat "$run/qemu.log"; die "QEMU exited"; }
	sleep 0.1
done
grep -q 'chanfs-e2e: ready' "$console" || die "the guest did not come up (see $console)"

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

  Ctrl-C here shuts the guest down, unmounts $mnt and exits.

EOF

# Until Ctrl-C, or until QEMU or chanfs ends on its own.
while kill -0 "$qemu_pid" 2>/dev/null && kill -0 "$chanfs_pid" 2>/dev/null; do
	sleep 1 &
	wait $! || true
done
kill -0 "$qemu_pid" 2>/dev/null || say "QEMU exited"
kill -0 "$chanfs_pid" 2>/dev/null || say "chanfs exited"
