#!/usr/bin/env bash
# build-qemu.sh — the current stack's QEMU: the newest qemu-system-x86 of
# Debian trixie-backports, which does not install on Debian 12.  It lives
# in a `debootstrap --variant=minbase trixie` tree of its own (the host's
# apt sources are never touched: trixie-backports is added to the tree's
# sources only) and runs through the tree's own dynamic loader.
#
#   build-qemu.sh CACHE
#
# In CACHE it keeps one tree per QEMU package version, qemu-<version>/
# (the epoch's ':' written '_'),
# holding root/ (the tree) and qemu-system-x86_64 (a wrapper that execs
# the tree's loader on the tree's QEMU: its pid is QEMU's).  Every run
# refreshes the tree's package lists and resolves the newest version in
# trixie-backports; a new version gets a new tree, an unchanged one is
# reused.  On success the last line on stdout is
#   qemu: ready QEMU_WRAPPER TREE_ROOT VERSION
# If trixie-backports cannot be reached it prints one line
#   qemu: error: trixie-backports cannot be reached (...)
# and exits 2; other failures exit 1.  Concurrent callers wait on a lock.
# Needs root (debootstrap, chroot); installs debootstrap when missing.
#
# E2E_DEBIAN_MIRROR (default http://deb.debian.org/debian) is the archive
# the tree uses; it is written into the tree's sources at every run.
set -euo pipefail

CACHE=${1:?usage: build-qemu.sh CACHE}
MIRROR=${E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
BACKPORTS=trixie-backports

say() { echo "qemu: $*"; }
die() { echo "qemu: error: $*" >&2; exit 1; }
unreachable() {
	echo "qemu: error: $BACKPORTS cannot be reached ($*) from $MIRROR:" \
		"the current stack cannot run" >&2
	exit 2
}

((EUID == 0)) || die "building the $SUITE tree needs root (debootstrap, chroot)"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.qemu.lock"
flock 9

if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 || {
		apt-get update -q >/dev/null 2>&1
		apt-get install -y -q --no-install-recommends debootstrap >/dev/null
	} || die "cannot install debootstrap"
fi

# The tree's apt, run inside it.
tree_apt() {
	local root=$1
	shift
	DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
}

# Point the tree at MIRROR: its suite and the backports, nothing else.
tree_sources() {
	local root=$1
	echo "deb $MIRROR $SUITE main" >"$root/etc/apt/sources.list"
	echo "deb $MIRROR $BACKPORTS main" >"$root/etc/apt/sources.list.d/chanfs-e2e-backports.list"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# Refresh the tree's lists; any index that fails is an error (apt's
# default only warns and keeps the old lists).
tree_update() {
	local root=$1 out
	tree_sources "$root"
	if ! out=$(tree_apt "$root" apt-get update -q --error-on=any 2>&1); then
		unreachable "$(echo "$out" | grep -m 1 -E '^(E|W|Err):' | cut -c1-160)"
	fi
}

# The newest version of package $2 in the backports, from the tree's lists.
backports_version() {
	tree_apt "$1" apt-cache madison "$2" |
		awk -F'|' -v s="$BACKPORTS/" '{
			split($3, f, " ")
			gsub(/ /, "", $2)
			if (index(f[2], s) == 1) { print $2; exit }
		}'
}

installed_version() {
	tree_apt "$1" dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true
}

write_wrapper() {
	local dir=$1 r=$1/root
	cat >"$dir/qemu-system-x86_64.tmp" <<EOF
#!/bin/sh
# QEMU $(installed_version "$r") from $BACKPORTS, through its tree's own loader.
QEMU_MODULE_DIR=$r/usr/lib/x86_64-linux-gnu/qemu
export QEMU_MODULE_DIR
exec $r/lib64/ld-linux-x86-64.so.2 \\
	--library-path $r/lib/x86_64-linux-gnu:$r/usr/lib/x86_64-linux-gnu \\
	$r/usr/bin/qemu-system-x86_64 -L $r/usr/share/qemu "\$@"
EOF
	chmod 0755 "$dir/qemu-system-x86_64.tmp"
	mv "$dir/qemu-system-x86_64.tmp" "$dir/qemu-system-x86_64"
}

# A fresh tree with QEMU from the backports; echoes its directory.
build_tree() {
	local tmp=$CACHE/qemu.build t0 ver dir
	t0=$(date +%s)
	rm -rf "$tmp"
	mkdir -p "$tmp"
	say "debootstrap --variant=minbase $SUITE (about a minute)" >&2
	if ! debootstrap --variant=minbase "$SUITE" "$tmp/root" "$MIRROR" \
	        >"$tmp/debootstrap.log" 2>&1; then
		if grep -q -i -E 'resolv|connect|fetch|Release' "$tmp/debootstrap.log"; then
			unreachable "debootstrap: $(grep -m 1 -E '^E:' "$tmp/debootstrap.log" | cut -c1-160)"
		fi
		tail -n 20 "$tmp/debootstrap.log" >&2
		die "debootstrap $SUITE failed"
	fi
	tree_update "$tmp/root"
	say "installing qemu-system-x86 from $BACKPORTS" >&2
	if ! tree_apt "$tmp/root" apt-get install -y -q --no-install-recommends \
	        -t "$BACKPORTS" qemu-system-x86 >"$tmp/install.log" 2>&1; then
		tail -n 20 "$tmp/install.log" >&2
		die "apt-get install -t $BACKPORTS qemu-system-x86 failed in the tree"
	fi
	tree_apt "$tmp/root" apt-get clean
	ver=$(installed_version "$tmp/root")
	[[ -n "$ver" ]] || die "qemu-system-x86 is not installed in the tree"
	# No ':' (the epoch) in the name: it separates --library-path.
	dir=$CACHE/qemu-${ver//:/_}
	rm -rf "$dir"
	mv "$tmp" "$dir"
	write_wrapper "$dir"
	say "built $dir in $(($(date +%s) - t0)) s ($(du -sm "$dir" | cut -f1) MiB)" >&2
	echo "$dir"
}

# The newest tree we have, if any, resolves what the backports offer now.
dir=$(ls -d "$CACHE"/qemu-[0-9]*/ 2>/dev/null | sort -V | tail -n 1 || true)
dir=${dir%/}
if [[ -n "$dir" && -x "$dir/root/usr/bin/qemu-system-x86_64" ]]; then
	tree_update "$dir/root"
	want=$(backports_version "$dir/root" qemu-system-x86)
	[[ -n "$want" ]] || unreachable "no qemu-system-x86 in its package lists"
	have=$(installed_version "$dir/root")
	if [[ "$want" != "$have" ]]; then
		say "$BACKPORTS has qemu-system-x86 $want (cached: $have): new tree"
		dir=$(build_tree)
	else
		say "cached qemu-system-x86 $have is the newest in $BACKPORTS"
	fi
else
	dir=$(build_tree)
fi
[[ -x "$dir/qemu-system-x86_64" ]] || write_wrapper "$dir"
# Older trees are no longer wanted (a running QEMU keeps its open files).
for old in "$CACHE"/qemu-[0-9]*; do
	[[ -d "$old" && "$old" != "$dir" ]] && rm -rf "$old"
done
"$dir/qemu-system-x86_64" --version >/dev/null 2>&1 ||
	die "$dir/qemu-system-x86_64 does not run"
say "ready $dir/qemu-system-x86_64 $dir/root $(installed_version "$dir/root")"
