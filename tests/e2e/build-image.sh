#!/usr/bin/env bash
# build-image.sh — the e2e guest image, built from Debian packages and
# cached: a kernel booted from its uncompressed vmlinux (QEMU boots an ELF
# vmlinux through PVH: no firmware decompression step) and a busybox
# initramfs with the vsock modules, the static chanfs-guest helper, /init
# and its scenarios (tests/e2e/guest/).
#
#   build-image.sh HELPER OUTDIR
#
# HELPER is the static chanfs-guest binary.  In OUTDIR it leaves
#   vmlinux, initramfs.cpio   what QEMU boots (-kernel, -initrd)
#   kernel-<package>_<version>/   the extracted kernel, one per version
# and prints "image: ..." lines.  The kernel is the package that
# linux-image-amd64 depends on (apt-get download, dpkg-deb: only the files
# needed).  The initramfs is rebuilt only when its key changes: the
# kernel package and version, the helper binary, /init, the scenarios and
# this script.  Concurrent callers wait on a lock.  Installs the tools it
# needs (busybox-static, cpio, xz-utils) with apt-get when they are
# missing and it runs as root.
set -euo pipefail

HELPER=${1:?usage: build-image.sh HELPER OUTDIR}
OUTDIR=${2:?usage: build-image.sh HELPER OUTDIR}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$SRC/guest

# The modules /init loads, in dependency order, and where they live.
MODULES=(
	kernel/drivers/virtio/virtio_ring.ko
	kernel/drivers/virtio/virtio.ko
	kernel/drivers/virtio/virtio_pci_legacy_dev.ko
	kernel/drivers/virtio/virtio_pci_modern_dev.ko
	kernel/drivers/virtio/virtio_pci.ko
	kernel/drivers/char/virtio_console.ko
	kernel/net/vmw_vsock/vsock.ko
	kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko
	kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko
)

say() { echo "image: $*"; }
die() { echo "image: error: $*" >&2; exit 1; }

[[ -x "$HELPER" ]] || die "no helper binary at $HELPER"
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

exec 9>"$OUTDIR/.lock"
flock 9

# ---- tools ----
need=()
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
[[ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" == installed ]] ||
	need+=(busybox-static)
if ((${#need[@]})); then
	((EUID == 0)) || die "missing ${need[*]}: install them (contrib/deps.sh) or run as root"
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	}
fi
BUSYBOX=$(command -v busybox || true)
[[ -n "$BUSYBOX" ]] || BUSYBOX=/bin/busybox
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$BUSYBOX is dynamically linked: install busybox-static"
fi
if readelf -l "$HELPER" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$HELPER is dynamically linked: the guest has no libc"
fi

# ---- which kernel ----
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(kernel_package || true)
if [[ -z "$pkg" ]]; then
	# No package lists yet (a fresh machine).
	apt-get update -q >/dev/null 2>&1 || true
	pkg=$(kernel_package || true)
fi
ver=
[[ -n "$pkg" ]] && ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
	awk '/^Version:/ { print $2; exit }')
if [[ -z "$pkg" || -z "$ver" ]]; then
	# Offline: the newest kernel extracted before will do.
	kdir=$(ls -d "$OUTDIR"/kernel-*/ 2>/dev/null | sort -V | tail -n 1 || true)
	[[ -n "$kdir" ]] || die "cannot find the package linux-image-amd64 depends on (apt-cache), and nothing is cached"
	kdir=${kdir%/}
	say "apt-cache has no answer; using the cached ${kdir##*/}"
else
	kdir=$OUTDIR/kernel-${pkg}_$ver
fi

# ---- the kernel: vmlinux and the modules, once per version ----
kernel_complete() {
	[[ -s "$kdir/vmlinux" ]] || return 1
	for m in "${MODULES[@]}"; do
		[[ -s "$kdir/modules/$(basename "$m")" ]] || return 1
	done
}
if ! kernel_complete; then
	say "kernel $pkg $ver: downloading"
	rm -rf "$kdir" "$kdir.tmp"
	mkdir -p "$kdir.tmp/deb" "$kdir.tmp/root"
	# apt-get download drops privileges to _apt where it can.
	chmod 0777 "$kdir.tmp/deb"
	(cd "$kdir.tmp/deb" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) ||
		die "apt-get download $pkg=$ver failed"
	deb=$(ls "$kdir.tmp/deb"/*.deb)
	patterns=("./boot/vmlinuz-*")
	for m in "${MODULES[@]}"; do
		patterns+=("./lib/modules/*/$m")
	done
	dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$kdir.tmp/root" --wildcards "${patterns[@]}" ||
		die "extracting from $deb failed"
	mkdir -p "$kdir.tmp/modules"
	for m in "${MODULES[@]}"; do
		f=$(ls "$kdir.tmp/root"/lib/modules/*/"$m"* 2>/dev/null | awk 'NR == 1')
		[[ -n "$f" ]] || die "$pkg has no $m"
		case "$f" in
		*.ko) cp "$f" "$kdir.tmp/modules/" ;;
		*.ko.xz) xz -dc "$f" >"$kdir.tmp/modules/$(basename "$m")" ;;
		*.ko.zst) zstd -dcq "$f" >"$kdir.tmp/modules/$(basename "$m")" ;;
		*) die "unknown module format $f" ;;
		esac
	done
	# The bzImage's payload is an xz stream: find its magic
	# (FD 37 7A 58 5A 00) and decompress that one stream; what follows
	# it in the file is not xz.
	vmlinuz=$(ls "$kdir.tmp/root"/boot/vmlinuz-*)
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | awk -F: 'NR == 1 { print $1 }')
	[[ -n "$off" ]] || die "no xz stream in $vmlinuz"
	xz -dc --single-stream <(tail -c +$((off + 1)) "$vmlinuz") >"$kdir.tmp/vmlinux" ||
		die "decompressing the kernel failed"
	[[ "$(head -c 4 "$kdir.tmp/vmlinux" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] ||
		die "the decompressed kernel is not an ELF file"
	basename "$vmlinuz" | sed 's/^vmlinuz-//' >"$kdir.tmp/release"
	rm -rf "$kdir.tmp/deb" "$kdir.tmp/root"
	mv "$kdir.tmp" "$kdir"
	say "kernel $(cat "$kdir/release") extracted to $kdir"
fi

# ---- the initramfs, keyed on everything that goes in ----
key=$({
	echo "${kdir##*/}"
	sha256sum "$HELPER" "$BUSYBOX" "$GUEST/init" "$GUEST"/scenarios/*.sh \
		"${BASH_SOURCE[0]}" | awk '{ print $1 }'
	(cd "$GUEST/scenarios" && ls)
} | sha256sum | awk '{ print $1 }')
if [[ -s "$OUTDIR/initramfs.cpio" && -e "$OUTDIR/vmlinux" &&
      "$(cat "$OUTDIR/image.key" 2>/dev/null)" == "$key" ]]; then
	say "up to date (${kdir##*/}, key ${key:0:12})"
else
	stage=$OUTDIR/initramfs.tmp
	rm -rf "$stage"
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp,lib/modules,scenarios}
	cp "$BUSYBOX" "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	cp "$HELPER" "$stage/bin/chanfs-guest"
	cp "$GUEST/init" "$stage/init"
	chmod 0755 "$stage/init" "$stage/bin/chanfs-guest"
	cp "$GUEST"/scenarios/*.sh "$stage/scenarios/"
	cp "$kdir"/modules/*.ko "$stage/lib/modules/"
	# Uncompressed: the kernel unpacks it without a decompressor, which
	# under TCG is faster than reading fewer bytes.
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) >"$OUTDIR/initramfs.cpio.tmp"
	mv "$OUTDIR/initramfs.cpio.tmp" "$OUTDIR/initramfs.cpio"
	ln -sfn "${kdir##*/}/vmlinux" "$OUTDIR/vmlinux"
	rm -rf "$stage"
	echo "$key" >"$OUTDIR/image.key"
	say "built initramfs.cpio ($(du -k "$OUTDIR/initramfs.cpio" | cut -f1) KiB) for $(cat "$kdir/release"), key ${key:0:12}"
fi
# Older kernels are no longer wanted.
for old in "$OUTDIR"/kernel-*; do
	[[ -d "$old" && "$old" != "$kdir" && "$old" != *.tmp ]] && rm -rf "$old"
done
say "kernel $OUTDIR/vmlinux initrd $OUTDIR/initramfs.cpio"
