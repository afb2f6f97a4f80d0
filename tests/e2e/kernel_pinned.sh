#!/usr/bin/env bash
# The stable stack's kernel is Debian 12's linux-image-amd64 even when apt
# also knows a later suite that offers a newer one: build-image.sh runs
# with an apt (APT_CONFIG: private sources, lists and cache in E2E_CACHE;
# the host's apt configuration is not touched) whose sources hold both
# bookworm and trixie, where apt's own candidate is trixie's kernel.  The
# image must still boot bookworm's 6.1 kernel, and no cached kernel may be
# removed by the build.
set -u
NAME=kernel_pinned
fail() { echo "FAIL: $NAME: $*"; exit 1; }
: "${CHANFS_GUEST:?}" "${E2E_IMAGE_DIR:?}"
SRC=$(cd "$(dirname "$0")" && pwd)
CACHE=${E2E_CACHE:-/var/cache/chanfs-e2e}
MIRROR=${E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
((EUID == 0)) || { echo "SKIP: a private apt state needs root"; exit 77; }

apt_dir=$CACHE/apt-bookworm-and-trixie
mkdir -p "$apt_dir"/{sources.list.d,preferences.d,state/lists/partial,cache/archives/partial}
key=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt_dir/sources.list" <<LIST
deb [signed-by=$key] $MIRROR bookworm main
deb [signed-by=$key] $MIRROR bookworm-updates main
deb [signed-by=$key] ${MIRROR%/debian}/debian-security bookworm-security main
deb [signed-by=$key] $MIRROR trixie main
LIST
cat >"$apt_dir/apt.conf" <<CONF
Dir::Etc::sourcelist "$apt_dir/sources.list";
Dir::Etc::sourceparts "$apt_dir/sources.list.d";
Dir::Etc::preferences "$apt_dir/preferences";
Dir::Etc::preferencesparts "$apt_dir/preferences.d";
Dir::State "$apt_dir/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$apt_dir/cache";
APT::Sandbox::User "root";
CONF
export APT_CONFIG=$apt_dir/apt.conf
apt-get update -q --error-on=any >"$apt_dir/update.log" 2>&1 ||
	fail "apt-get update of bookworm + trixie from $MIRROR failed: $(grep -m 1 -E '^(E|W|Err):' "$apt_dir/update.log")"
candidate=$(apt-cache policy linux-image-amd64 | awk '/Candidate:/ { print $2 }')
trixie=$(apt-cache madison linux-image-amd64 | awk -F'|' '$3 ~ / trixie\/main / { gsub(/ /, "", $2); print $2; exit }')
[[ -n "$trixie" && "$candidate" == "$trixie" ]] ||
	fail "apt's candidate is $candidate, not trixie's $trixie: this apt does not test the pinning"

before=$(ls -d "$CACHE"/kernel-*/ 2>/dev/null | sort)
out=$(mktemp -d /tmp/chanfs-e2e-pin.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$SRC/build-image.sh" "$CHANFS_GUEST" "$out/stable" >"$out/image.log" 2>&1 || {
	cat "$out/image.log"
	fail "build-image.sh failed with bookworm and trixie in apt's sources"
}
cat "$out/image.log"
. "$out/stable/kernel.env"
[[ "$KERNEL_SUITE" == bookworm && "$KERNEL_RELEASE" == 6.1.* ]] ||
	fail "built kernel $KERNEL_RELEASE ($KERNEL_PACKAGE $KERNEL_VERSION, $KERNEL_SUITE), not bookworm's 6.1"
for d in $before; do
	[[ -s "$d/vmlinux" ]] || fail "the cached kernel $d was removed"
done
echo "PASS: $NAME: apt's candidate was trixie's $candidate; the image has $KERNEL_PACKAGE $KERNEL_VERSION (bookworm)"
