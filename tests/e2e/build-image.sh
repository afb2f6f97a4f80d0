#!/usr/bin/env bash
# build-image.sh — the e2e guest image, built from Debian packages and
# cached: a kernel booted from its uncompressed vmlinux (QEMU boots an ELF
# vmlinux through PVH: no firmware decompression step) and a busybox
# initramfs with the vsock modules, the static chanfs-guest helper, /init
# and its scenarios (tests/e2e/guest/).
#
#   build-image.sh HELPER OUTDIR [SUITE [TREE]]
#
# The kernel is linux-image-amd64 of SUITE and of no other suite apt may
# know: bookworm (the default; Debian 12's, from bookworm,
# bookworm-updates or bookworm-security in the host's apt lists) or
# trixie-backports (from the apt of TREE, a trixie tree with the
# backports in its sources: build-qemu.sh's).  Its packages are fetched
# with apt-get download and only the files needed are extracted; both
# layouts work: Debian 12's image package with /boot/vmlinuz-* and .ko
# modules, and the later one whose image package depends on
# linux-binary-V (usr/lib/modules/V/vmlinuz, a zstd payload) and
# linux-modules-V (.ko.xz; virtio core, virtio_pci and virtio_console
# built in).
#
# The guest agent is Debian 12's qemu-guest-agent (bookworm,
# bookworm-updates or bookworm-security, from the host's apt, for both
# stacks: its glib and libc run on either kernel): the package and the
# libraries it loads are fetched with apt-get download, and qemu-ga goes
# into the initramfs with exactly the shared objects its ELF headers name
# (followed recursively) and the dynamic loader.  Kept in E2E_CACHE as
# qga-<version>/, one per version, like the kernels.
#
# HELPER is the static chanfs-guest binary.  In OUTDIR it leaves
#   vmlinux, initramfs.cpio   what QEMU boots (-kernel, -initrd)
#   kernel.env                which kernel: KERNEL_SUITE, KERNEL_PACKAGE,
#                             KERNEL_VERSION, KERNEL_RELEASE
# and prints "image: ..." lines.  Extracted kernels are kept in E2E_CACHE
# (default /var/cache/chanfs-e2e, or OUTDIR/cache where that is not
# writable) as kernel-<package>_<version>/, one per version: a new
# version is added beside the others, never over one.  The initramfs is
# rebuilt only when its key changes: the kernel package and version, the
# guest agent's version and files, the helper binary, /init, the
# scenarios and this script.  Concurrent
# callers wait on a lock.  Installs the tools it needs (busybox-static,
# cpio, xz-utils, zstd) with apt-get when they are missing and it runs
# as root.
set -euo pipefail

HELPER=${1:?usage: build-image.sh HELPER OUTDIR [SUITE [TREE]]}
OUTDIR=${2:?usage: build-image.sh HELPER OUTDIR [SUITE [TREE]]}
SUITE=${3:-bookworm}
TREE=${4:-}
case "$SUITE" in
bookworm) SUITE_RE='bookworm|bookworm-updates|bookworm-security' ;;
trixie-backports) SUITE_RE='trixie-backports' ;;
*) echo "image: error: unknown suite $SUITE (bookworm, trixie-backports)" >&2; exit 2 ;;
esac
if [[ "$SUITE" != bookworm && -z "$TREE" ]]; then
	echo "image: error: the kernel of $SUITE needs its apt TREE" >&2
	exit 2
fi
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

KCACHE=${E2E_CACHE:-/var/cache/chanfs-e2e}
if ! mkdir -p "$KCACHE" 2>/dev/null || [[ ! -w "$KCACHE" ]]; then
	KCACHE=$OUTDIR/cache
	mkdir -p "$KCACHE"
fi

exec 9>"$OUTDIR/.lock"
flock 9
# Kernels are shared by every build directory on the machine.
exec 8>"$KCACHE/.kernel.lock"
flock 8

# ---- tools ----
need=()
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
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

# ---- which kernel: linux-image-amd64 of SUITE, never another suite ----
# apt as the kernel's suite sees it: the host's, or the tree's.
kapt() {
	if [[ -n "$TREE" ]]; then
		chroot "$TREE" "$@"
	else
		"$@"
	fi
}
# The newest version of package $1 that one of SUITE's archives offers:
# madison lists every suite apt knows, each line ending in
# "<archive url> <suite>/<component> <arch> Packages".
suite_version() {
	kapt apt-cache madison "$1" 2>/dev/null |
		awk -F'|' -v re="^($SUITE_RE)/" '{
			split($3, f, " ")
			gsub(/ /, "", $2)
			if (f[2] ~ re) { print $2; exit }
		}'
}
# The package=version pairs that package $1 at version $2 depends on and
# whose names match $3 (Debian pins them with "(= version)").
deps_matching() {
	kapt apt-cache show --no-all-versions "$1=$2" 2>/dev/null |
		awk -v re="$3" '/^Depends:/ {
			sub(/^Depends: */, "")
			n = split($0, d, /, */)
			for (i = 1; i <= n; i++) {
				split(d[i], alt, / *[|] */)
				if (match(alt[1], "^" re) &&
				    match(alt[1], /\(= [^)]*\)/)) {
					split(alt[1], w, " ")
					v = substr(alt[1], RSTART + 3, RLENGTH - 4)
					print w[1] "=" v
				}
			}
			exit
		}'
}
meta_ver=$(suite_version linux-image-amd64 || true)
if [[ -z "$meta_ver" && -z "$TREE" ]]; then
	# No package lists yet (a fresh machine).
	apt-get update -q >/dev/null 2>&1 || true
	meta_ver=$(suite_version linux-image-amd64 || true)
fi
pkg= ver=
if [[ -n "$meta_ver" ]]; then
	img=$(deps_matching linux-image-amd64 "$meta_ver" 'linux-image-[0-9]' | head -n 1)
	pkg=${img%%=*}
	ver=${img#*=}
fi
if [[ -z "$pkg" || -z "$ver" ]]; then
	[[ -z "$TREE" ]] || die "$SUITE offers no linux-image-amd64 (apt-cache madison in $TREE)"
	# Offline: the newest kernel of this suite extracted before will do.
	kdir=$(grep -l -x "$SUITE" "$KCACHE"/kernel-*/suite 2>/dev/null |
		xargs -r -n 1 dirname | sort -V | tail -n 1 || true)
	[[ -n "$kdir" ]] || die "apt knows no linux-image-amd64 of $SUITE, and no kernel of $SUITE is cached in $KCACHE"
	say "apt knows no linux-image-amd64 of $SUITE; using the cached ${kdir##*/}"
	pkg=$(cat "$kdir/package")
	ver=$(cat "$kdir/version")
else
	kdir=$KCACHE/kernel-${pkg}_${ver//:/_}
fi

# ---- the kernel: vmlinux and the modules, once per version, kept ----
kernel_complete() {
	[[ -s "$kdir/vmlinux" && -s "$kdir/release" && -e "$kdir/modules/order" ]]
}
if ! kernel_complete; then
	t0=$(date +%s)
	# Debian 12's image package holds /boot/vmlinuz-* and the modules;
	# Linux 7.x's is empty and depends on linux-binary-V (the vmlinuz
	# under /usr/lib/modules/V/), linux-modules-V and linux-base-V
	# (modules.builtin).
	debs=("$pkg=$ver")
	while read -r d; do
		[[ -n "$d" ]] && debs+=("$d")
	done < <(deps_matching "$pkg" "$ver" 'linux-(binary|modules|base)-[0-9]')
	say "kernel $pkg $ver ($SUITE): downloading ${debs[*]}"
	rm -rf "$kdir.tmp"
	mkdir -p "$kdir.tmp/deb" "$kdir.tmp/root"
	if [[ -n "$TREE" ]]; then
		dl=$(mktemp -d "$TREE/var/tmp/chanfs-e2e-dl.XXXXXX")
		chmod 0777 "$dl"
		chroot "$TREE" sh -c 'cd "$1" && shift && apt-get download -q "$@"' \
			sh "${dl#"$TREE"}" "${debs[@]}" >/dev/null 2>&1 ||
			{ rm -rf "$dl"; die "apt-get download ${debs[*]} failed in $TREE"; }
		mv "$dl"/*.deb "$kdir.tmp/deb/"
		rm -rf "$dl"
	else
		# apt-get download drops privileges to _apt where it can.
		chmod 0777 "$kdir.tmp/deb"
		(cd "$kdir.tmp/deb" && apt-get download -q "${debs[@]}" >/dev/null 2>&1) ||
			die "apt-get download ${debs[*]} failed"
	fi
	patterns=('vmlinuz*' 'modules.builtin')
	for m in "${MODULES[@]}"; do
		patterns+=("$m*")
	done
	for deb in "$kdir.tmp/deb"/*.deb; do
		# Not every package has every pattern; what is needed is
		# checked below.
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$kdir.tmp/root" --wildcards --no-anchored \
				"${patterns[@]}" 2>/dev/null || true
	done
	vmlinuz=$(find "$kdir.tmp/root" -type f -name 'vmlinuz*' | head -n 1)
	[[ -n "$vmlinuz" ]] || die "no vmlinuz in ${debs[*]}"
	case "$vmlinuz" in
	*/boot/vmlinuz-*) release=${vmlinuz##*/vmlinuz-} ;;
	*/modules/*/vmlinuz) release=${vmlinuz%/vmlinuz}; release=${release##*/} ;;
	*) die "vmlinuz at an unknown place: $vmlinuz" ;;
	esac
	builtin=$(find "$kdir.tmp/root" -name modules.builtin | head -n 1)
	mkdir -p "$kdir.tmp/modules"
	: >"$kdir.tmp/modules/order"
	for m in "${MODULES[@]}"; do
		name=$(basename "$m" .ko)
		f=$(find "$kdir.tmp/root" -path "*/modules/$release/$m*" -type f | head -n 1)
		if [[ -z "$f" ]]; then
			# From 6.12 on, virtio core, virtio_pci and
			# virtio_console are built in.
			[[ -n "$builtin" ]] && grep -q -x "$m" "$builtin" ||
				die "$release has no module $m and does not build it in"
			continue
		fi
		case "$f" in
		*.ko) cp "$f" "$kdir.tmp/modules/$name.ko" ;;
		*.ko.xz) xz -dc "$f" >"$kdir.tmp/modules/$name.ko" ;;
		*.ko.zst) zstd -dcq "$f" >"$kdir.tmp/modules/$name.ko" ;;
		*) die "unknown module format $f" ;;
		esac
		echo "$name" >>"$kdir.tmp/modules/order"
	done
	# The bzImage's setup header says where its payload is (boot
	# protocol >= 2.08): payload_offset and payload_length at 0x248,
	# counted from the protected-mode code after (setup_sects + 1)
	# sectors.  The payload is one xz (Debian 12) or zstd (later)
	# stream followed by the 4-byte uncompressed size.
	setup_sects=$(od -An -tu1 -j $((0x1f1)) -N 1 "$vmlinuz" | tr -d ' ')
	((setup_sects != 0)) || setup_sects=4
	read -r poff plen < <(od -An -tu4 -j $((0x248)) -N 8 "$vmlinuz")
	start=$(((setup_sects + 1) * 512 + poff))
	payload() {
		dd if="$vmlinuz" bs=64K iflag=skip_bytes,count_bytes \
			skip="$start" count="$1" status=none
	}
	magic=$(payload 6 | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	fd377a585a00) dec=(xz -dc --single-stream) ;;
	28b52ffd*) dec=(zstd -dcq) ;;
	*) die "the payload of $vmlinuz is neither xz nor zstd (magic $magic)" ;;
	esac
	payload $((plen - 4)) | "${dec[@]}" >"$kdir.tmp/vmlinux" ||
		die "decompressing the kernel (${dec[0]}) failed"
	size=$(dd if="$vmlinuz" bs=1 skip=$((start + plen - 4)) count=4 status=none |
		od -An -tu4 | tr -d ' ')
	[[ "$(stat -c %s "$kdir.tmp/vmlinux")" == "$size" ]] ||
		die "the decompressed kernel is not the $size bytes its bzImage says"
	[[ "$(head -c 4 "$kdir.tmp/vmlinux" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] ||
		die "the decompressed kernel is not an ELF file"
	echo "$release" >"$kdir.tmp/release"
	echo "$pkg" >"$kdir.tmp/package"
	echo "$ver" >"$kdir.tmp/version"
	echo "$SUITE" >"$kdir.tmp/suite"
	echo "${dec[0]}" >"$kdir.tmp/compression"
	rm -rf "$kdir.tmp/deb" "$kdir.tmp/root"
	rm -rf "$kdir"
	mv "$kdir.tmp" "$kdir"
	say "kernel $release ($pkg $ver, ${dec[0]} payload, modules: $(tr '\n' ' ' <"$kdir/modules/order"))" \
		"extracted to $kdir in $(($(date +%s) - t0)) s"
fi

# ---- the guest agent: bookworm's qemu-ga and its libraries, once per version ----
QGA_RE='bookworm|bookworm-updates|bookworm-security'
qga_ver=$(TREE='' SUITE_RE=$QGA_RE suite_version qemu-guest-agent || true)
if [[ -z "$qga_ver" ]]; then
	# Offline: the newest one extracted before will do.
	qdir=$(ls -d "$KCACHE"/qga-*/ 2>/dev/null | sort -V | tail -n 1 || true)
	qdir=${qdir%/}
	[[ -n "$qdir" && -x "$qdir/root/qemu-ga" ]] ||
		die "apt knows no qemu-guest-agent of bookworm, and none is cached in $KCACHE"
	say "apt knows no qemu-guest-agent of bookworm; using the cached ${qdir##*/}"
else
	qdir=$KCACHE/qga-${qga_ver//:/_}
fi
if [[ ! -x "$qdir/root/qemu-ga" ]]; then
	t0=$(date +%s)
	rm -rf "$qdir.tmp"
	mkdir -p "$qdir.tmp/deb" "$qdir.tmp/x" "$qdir.tmp/root/lib"
	# The package and what it needs, recursively, each at bookworm's
	# version; the shared objects are picked from them below.
	debs=("qemu-guest-agent=$qga_ver")
	while read -r p; do
		v=$(TREE='' SUITE_RE=$QGA_RE suite_version "$p" || true)
		[[ -n "$v" ]] && debs+=("$p=$v")
	done < <(apt-cache depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
		"qemu-guest-agent=$qga_ver" 2>/dev/null |
		grep -E '^(lib|zlib)[^ <]*$' | sort -u)
	say "guest agent qemu-guest-agent $qga_ver: downloading ${debs[*]}"
	chmod 0777 "$qdir.tmp/deb"
	(cd "$qdir.tmp/deb" && apt-get download -q "${debs[@]}" >/dev/null 2>&1) ||
		die "apt-get download ${debs[*]} failed"
	for deb in "$qdir.tmp/deb"/*.deb; do
		dpkg-deb -x "$deb" "$qdir.tmp/x"
	done
	qga=$qdir.tmp/x/usr/sbin/qemu-ga
	[[ -x "$qga" ]] || die "no usr/sbin/qemu-ga in qemu-guest-agent $qga_ver"
	cp "$qga" "$qdir.tmp/root/qemu-ga"
	# Every DT_NEEDED, recursively, from the extracted packages only.
	todo=("$qga") seen=" "
	while ((${#todo[@]})); do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		for so in $(readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
			[[ "$seen" == *" $so "* ]] && continue
			seen+="$so "
			lib=$(find "$qdir.tmp/x" -name "$so" \( -type f -o -type l \) | head -n 1)
			[[ -n "$lib" ]] || die "qemu-ga needs $so, which none of ${debs[*]} has"
			cp -L "$lib" "$qdir.tmp/root/lib/$so"
			todo+=("$qdir.tmp/root/lib/$so")
		done
	done
	interp=$(readelf -l "$qga" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
	ldso=$(find "$qdir.tmp/x" -name "${interp##*/}" \( -type f -o -type l \) | head -n 1)
	[[ -n "$ldso" ]] || die "no dynamic loader ${interp##*/} in libc6"
	cp -L "$ldso" "$qdir.tmp/root/lib/${interp##*/}"
	echo "$interp" >"$qdir.tmp/interp"
	echo "$qga_ver" >"$qdir.tmp/version"
	rm -rf "$qdir.tmp/deb" "$qdir.tmp/x" "$qdir"
	mv "$qdir.tmp" "$qdir"
	say "guest agent qemu-ga $qga_ver with $(ls "$qdir/root/lib" | tr '\n' ' ')extracted to $qdir in $(($(date +%s) - t0)) s"
fi

# ---- the initramfs, keyed on everything that goes in ----
key=$({
	echo "${kdir##*/} ${qdir##*/}"
	sha256sum "$HELPER" "$BUSYBOX" "$GUEST/init" "$GUEST"/scenarios/*.sh \
		"$qdir"/root/qemu-ga "$qdir"/root/lib/* \
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
	cp "$kdir"/modules/*.ko "$kdir/modules/order" "$stage/lib/modules/"
	# qemu-ga where its ELF header looks for the loader, the libraries
	# in the loader's default directory (no ld.so.cache needed).
	mkdir -p "$stage/usr/sbin" "$stage/lib/x86_64-linux-gnu" \
		"$stage$(dirname "$(cat "$qdir/interp")")"
	cp "$qdir/root/qemu-ga" "$stage/usr/sbin/qemu-ga"
	cp "$qdir"/root/lib/* "$stage/lib/x86_64-linux-gnu/"
	interp=$(cat "$qdir/interp")
	[[ -e "$stage$interp" ]] ||
		ln -s "/lib/x86_64-linux-gnu/${interp##*/}" "$stage$interp"
	# Uncompressed: the kernel unpacks it without a decompressor, which
	# under TCG is faster than reading fewer bytes.
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) >"$OUTDIR/initramfs.cpio.tmp"
	mv "$OUTDIR/initramfs.cpio.tmp" "$OUTDIR/initramfs.cpio"
	ln -sfn "$kdir/vmlinux" "$OUTDIR/vmlinux"
	rm -rf "$stage"
	echo "$key" >"$OUTDIR/image.key"
	say "built initramfs.cpio ($(du -k "$OUTDIR/initramfs.cpio" | cut -f1) KiB) for $(cat "$kdir/release"), key ${key:0:12}"
fi
# Which kernel this image boots, for the tests to say.
{
	echo "KERNEL_SUITE=$SUITE"
	echo "KERNEL_PACKAGE=$(cat "$kdir/package")"
	echo "KERNEL_VERSION=$(cat "$kdir/version")"
	echo "KERNEL_RELEASE=$(cat "$kdir/release")"
} >"$OUTDIR/kernel.env"
say "kernel $(cat "$kdir/release") ($(cat "$kdir/package") $(cat "$kdir/version"), $SUITE)" \
	"$OUTDIR/vmlinux initrd $OUTDIR/initramfs.cpio"
