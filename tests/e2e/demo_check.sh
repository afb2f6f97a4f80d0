#!/usr/bin/env bash
# The README's demo works: contrib/demo.sh --check boots the demo guest
# (TCG, the default), runs each command it prints (echo through vsock/1234,
# the 1 MiB digest of vsock/1235, a line to the console through
# vsock/1236, an accept on vsock/listen/5555) and ends with the guest
# powered off and chanfs unmounted, status 0.  Uses this build (nothing
# installed or built).
. "$(dirname "$0")/lib.sh"
e2e_init
CHANFS_DEMO_PREBUILT=1 CHANFS_DEMO_BOOT_WAIT=$E2E_WAIT \
	"$E2E_SRC/../../contrib/demo.sh" --check "$MNT" || e2e_fail "demo.sh --check failed"
echo "PASS: $E2E_NAME: every command the demo prints works; clean shutdown"
