#!/usr/bin/env bash
# contrib/deps.sh — install every package chanfs needs to build and to run
# its test suites (Debian 12; apt-get).  Idempotent and non-interactive:
# when dpkg already has every package installed it changes nothing and
# touches no network.  Needs root (or sudo) only when something is missing.
set -euo pipefail

# The one list.  Ask the lead to add what a suite needs.
PACKAGES=(
	build-essential meson ninja-build pkg-config  # build
	libfuse3-dev fuse3                            # fs/, integration
	libevent-dev                                  # the loop
	libglib2.0-dev                                # benchmark baseline
	libcmocka-dev                                 # unit tests
	python3                                       # check.sh summary
	qemu-system-x86                               # e2e guest
	busybox-static cpio xz-utils zstd             # e2e guest image
	debootstrap                                   # e2e current stack (trixie tree)
	socat                                         # e2e hybrid sockets (--uds)
	attr                                          # getfattr: user.chanfs.args in the services tests
	clang libclang-rt-14-dev                      # fuzz (libFuzzer)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != installed ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages installed"
	exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
	if ! command -v sudo >/dev/null; then
		echo "deps: need root to install ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi
# This release's own suites win even where apt knows others (testing,
# backports): otherwise a newer version elsewhere is taken, and half of
# another release with it.
pin=()
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [[ -n "$codename" ]]; then
	pin=(-o "APT::Default-Release=/^$codename(-security|-updates)?\$/")
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${pin[@]}" "${missing[@]}"
