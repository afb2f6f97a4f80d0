# lib.sh — sourced by every e2e test: a freshly started chanfs, a real
# Linux guest under QEMU (TCG) on its vhost-user socket, and the helpers
# the tests share.  A test reads like:
#
#   . "$(dirname "$0")/lib.sh"
#   e2e_init                      # skip (77) only if QEMU cannot run here
#   e2e_start_chanfs [OPTIONS]    # chanfs -f on $MNT, socket $SOCK
#   e2e_boot SCENARIO             # boots, waits for "chanfs-e2e: ready"
#   e2e_client echo "$MNT/vsock/7000" 1M
#   e2e_pass "what was shown"
#
# The environment (set by tests/e2e/meson.build): CHANFS, CHANFS_GUEST
# (the static helper), E2E_CLIENT, E2E_IMAGE_DIR, E2E_STACK: which QEMU
# and guest kernel run the test —
#   stable   Debian 12's: the host's qemu-system-x86_64 (7.2) and
#            bookworm's linux-image-amd64 (6.1)
#   current  the newest qemu-system-x86 and linux-image-amd64 of
#            trixie-backports (build-qemu.sh: a trixie tree cached in
#            E2E_CACHE), the vsock device with in_order=on
# e2e_init logs which versions ran.  Every wait is bounded
# by E2E_WAIT seconds (default 300): the bounds catch hangs, and nothing
# is asserted about how long anything took.  On failure the logs of
# chanfs, QEMU and the guest's console are printed.

set -u

E2E_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_STACK=${E2E_STACK:-stable}
E2E_CACHE=${E2E_CACHE:-/var/cache/chanfs-e2e}
QEMU=${QEMU:-qemu-system-x86_64}
E2E_VSOCK_OPTS=   # more vhost-user-vsock-pci properties, ",name=value"
E2E_QEMU_ARGS=()  # more QEMU arguments for e2e_boot (devices, chardevs)
E2E_WAIT=${E2E_WAIT:-300}
E2E_MEM=256M
export E2E_CLIENT_TIMEOUT=${E2E_CLIENT_TIMEOUT:-$E2E_WAIT}

E2E_DIR=
CHANFS_PID=
QEMU_PID=
MNT=
SOCK=
QMP=
SERIAL=
KERNEL=
INITRD=
E2E_NAME=$(basename "$0" .sh)

e2e_log() { echo "e2e[$E2E_NAME]: $*"; }

e2e_now() { date +%s.%N; }

e2e_since() { awk -v a="$1" -v b="$(e2e_now)" 'BEGIN { printf "%.2f", b - a }'; }

e2e_dump() {
	local f
	for f in "$E2E_DIR/chanfs.log" "$E2E_DIR"/qemu*.log "$E2E_DIR"/serial*.log; do
		[[ -s "$f" ]] || continue
		echo "----- ${f##*/} (last 60 lines)"
		tail -n 60 "$f"
	done
	echo "-----"
}

e2e_fail() {
	echo "FAIL: $E2E_NAME: $*"
	[[ -n "$E2E_DIR" ]] && e2e_dump
	exit 1
}

# e2e_pass SUMMARY: end the guest, then chanfs, which must end cleanly:
# status 0 on SIGTERM, the mount gone, no sanitizer report in its log.
e2e_pass() {
	local i rc=0
	e2e_stop_qemu
	kill -TERM "$CHANFS_PID" 2>/dev/null
	for ((i = 0; i < E2E_WAIT * 10; i++)); do
		kill -0 "$CHANFS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$CHANFS_PID" 2>/dev/null && e2e_fail "chanfs did not end on SIGTERM"
	wait "$CHANFS_PID" || rc=$?
	CHANFS_PID=
	((rc == 0)) || e2e_fail "chanfs ended with status $rc on SIGTERM"
	! mountpoint -q "$MNT" || e2e_fail "$MNT still mounted after chanfs ended"
	! grep -q -e 'Sanitizer' -e 'runtime error:' "$E2E_DIR/chanfs.log" ||
		e2e_fail "chanfs's log has a sanitizer report"
	echo "PASS: $E2E_NAME: $*"
	exit 0
}

# Stop what we started, by pid; unmount what we mounted.
e2e_cleanup() {
	local rc=$? i
	e2e_stop_qemu
	if [[ -n "$CHANFS_PID" ]] && kill -0 "$CHANFS_PID" 2>/dev/null; then
		kill -TERM "$CHANFS_PID" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$CHANFS_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$CHANFS_PID" 2>/dev/null; then
			e2e_log "chanfs did not end on SIGTERM; killing it"
			kill -KILL "$CHANFS_PID" 2>/dev/null
		fi
		wait "$CHANFS_PID" 2>/dev/null
	fi
	if [[ -n "$MNT" ]] && mountpoint -q "$MNT" 2>/dev/null; then
		e2e_log "$MNT still mounted after chanfs ended; unmounting"
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	if [[ -n "$E2E_DIR" ]]; then
		if [[ -n "${E2E_KEEP:-}" ]]; then
			e2e_log "kept $E2E_DIR"
		else
			rm -rf "$E2E_DIR"
		fi
	fi
	exit "$rc"
}

# e2e_init: check that this machine can run the suite, set up the
# stack's QEMU and image.
e2e_init() {
	local image suite tree=
	: "${CHANFS:?}" "${CHANFS_GUEST:?}" "${E2E_CLIENT:?}" "${E2E_IMAGE_DIR:?}"
	case "$E2E_STACK" in
	stable|current) ;;
	*) echo "FAIL: $E2E_NAME: unknown E2E_STACK '$E2E_STACK' (stable, current)"; exit 1 ;;
	esac
	if [[ "$E2E_STACK" == stable ]] && ! command -v "$QEMU" >/dev/null 2>&1; then
		echo "SKIP: $QEMU is not installed (contrib/deps.sh installs it)"
		exit 77
	fi
	if [[ ! -c /dev/fuse ]] || ! command -v fusermount3 >/dev/null 2>&1; then
		echo "SKIP: no /dev/fuse or fusermount3: nothing can be mounted here"
		exit 77
	fi
	E2E_DIR=$(mktemp -d /tmp/chanfs-e2e.XXXXXX)
	trap e2e_cleanup EXIT
	trap 'exit 1' INT TERM
	MNT=$E2E_DIR/mnt
	SOCK=$E2E_DIR/vsock.sock
	QMP=$E2E_DIR/qmp.sock
	mkdir -p "$MNT"
	suite=bookworm
	if [[ "$E2E_STACK" == current ]]; then
		if ! "$E2E_SRC/build-qemu.sh" "$E2E_CACHE" >"$E2E_DIR/stack.log" 2>&1; then
			# One line: what went wrong (unreachable backports first).
			e2e_fail "current stack: $(grep -m 1 'error:' "$E2E_DIR/stack.log" ||
				tail -n 1 "$E2E_DIR/stack.log")"
		fi
		read -r _ _ QEMU tree _ < <(grep '^qemu: ready ' "$E2E_DIR/stack.log")
		suite=trixie-backports
		# The device offers VIRTIO_F_IN_ORDER only when asked (QEMU >= 9.1).
		E2E_VSOCK_OPTS=,in_order=on
	fi
	image=$E2E_IMAGE_DIR/$E2E_STACK
	"$E2E_SRC/build-image.sh" "$CHANFS_GUEST" "$image" $suite $tree >"$E2E_DIR/image.log" 2>&1 || {
		cat "$E2E_DIR/image.log"
		e2e_fail "building the $E2E_STACK guest image ($suite kernel) failed"
	}
	KERNEL=$image/vmlinux
	INITRD=$image/initramfs.cpio
	# What had to be built this time, and how long it took.
	grep -h -E '^(qemu|image): .*( in [0-9]+ s|new tree)' "$E2E_DIR"/stack.log \
		"$E2E_DIR/image.log" 2>/dev/null | while read -r line; do
		e2e_log "$line"
	done
	# shellcheck source=/dev/null
	. "$image/kernel.env"
	e2e_log "stack $E2E_STACK: $("$QEMU" --version | head -n 1)," \
		"kernel $KERNEL_RELEASE ($KERNEL_PACKAGE $KERNEL_VERSION, $KERNEL_SUITE)," \
		"-device vhost-user-vsock-pci${E2E_VSOCK_OPTS:-}"
}

# e2e_wait DESCRIPTION COMMAND...: poll until COMMAND succeeds, failing
# at once when chanfs or QEMU died, or after E2E_WAIT seconds.
e2e_wait() {
	local what=$1 i
	shift
	for ((i = 0; i < E2E_WAIT * 10; i++)); do
		"$@" && return 0
		if [[ -n "$CHANFS_PID" ]] && ! kill -0 "$CHANFS_PID" 2>/dev/null; then
			e2e_fail "chanfs died while waiting for $what"
		fi
		if [[ -n "$QEMU_PID" ]] && ! kill -0 "$QEMU_PID" 2>/dev/null; then
			e2e_fail "QEMU died while waiting for $what"
		fi
		if [[ -n "$SERIAL" ]] && grep -q -e 'Kernel panic' -e 'chanfs-e2e: FAIL' "$SERIAL" 2>/dev/null; then
			e2e_fail "the guest failed while waiting for $what"
		fi
		sleep 0.1
	done
	e2e_fail "gave up after ${E2E_WAIT}s waiting for $what"
}

e2e_mounted() { mountpoint -q "$MNT" && [[ -S "$SOCK" ]]; }

# e2e_start_chanfs [OPTIONS...]: chanfs in the foreground (our child),
# with a connect timeout generous enough for a slow TCG guest.
e2e_start_chanfs() {
	"$CHANFS" -f -s "$SOCK" --connect-timeout 60000 "$@" "$MNT" \
		>>"$E2E_DIR/chanfs.log" 2>&1 &
	CHANFS_PID=$!
	e2e_wait "chanfs to listen and mount" e2e_mounted
}

# e2e_boot SCENARIO [SERIAL-LOG]: boot the guest on $SOCK and wait until
# its scenario is ready.  Logs the boot times: host wall clock from QEMU's
# start to the first line of /init and to "ready", and the guest's uptime.
e2e_boot() {
	local scenario=$1 t0 init_line ready_line
	SERIAL=${2:-$E2E_DIR/serial.log}
	: >"$SERIAL"
	t0=$(e2e_now)
	"$QEMU" -machine q35 -accel tcg -m "$E2E_MEM" -smp 1 \
		-nodefaults -no-user-config -display none -no-reboot \
		-object memory-backend-memfd,id=mem,size="$E2E_MEM",share=on \
		-numa node,memdev=mem \
		-chardev socket,id=vsock0,path="$SOCK" \
		-device vhost-user-vsock-pci,chardev=vsock0"$E2E_VSOCK_OPTS" \
		"${E2E_QEMU_ARGS[@]}" \
		-serial file:"$SERIAL" \
		-qmp unix:"$QMP",server=on,wait=off \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 chanfs.scenario=$scenario" \
		>>"$E2E_DIR/qemu.log" 2>&1 &
	QEMU_PID=$!
	e2e_wait "the guest's /init" grep -q 'chanfs-e2e: init' "$SERIAL"
	init_line=$(e2e_since "$t0")
	e2e_wait "the guest's scenario $scenario" grep -q 'chanfs-e2e: ready' "$SERIAL"
	ready_line=$(e2e_since "$t0")
	e2e_log "boot: /init after ${init_line}s, ready after ${ready_line}s (host clock);" \
		"guest: $(grep -o 'init uptime [0-9.]*' "$SERIAL" | head -n 1)," \
		"$(grep -o 'ready uptime [0-9.]*' "$SERIAL" | head -n 1)"
}

# e2e_stop_qemu: end our QEMU (TERM, then KILL) and forget it.
e2e_stop_qemu() {
	local i
	[[ -n "$QEMU_PID" ]] || return 0
	if kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$QEMU_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$QEMU_PID" 2>/dev/null
	fi
	wait "$QEMU_PID" 2>/dev/null
	QEMU_PID=
}

# e2e_serial_wait PATTERN: wait for a line of the guest's console.
e2e_serial_wait() {
	e2e_wait "'$1' on the guest's console" grep -q -e "$1" "$SERIAL"
}

# e2e_qmp COMMAND: one QMP command (stop, cont) to the guest's QEMU.
e2e_qmp() {
	"$E2E_CLIENT" qmp "$QMP" "$1" || e2e_fail "QMP $1 failed"
}

# e2e_client ARGS...: run the host client; its failure is the test's.
e2e_client() {
	"$E2E_CLIENT" "$@" || e2e_fail "e2e-client $1 failed"
}

# e2e_expect_sha HEX: the guest's console reported a transfer with HEX.
e2e_expect_sha() {
	e2e_serial_wait "sha256 $1"
}

# e2e_pattern_sha BYTES: SHA-256 of the first BYTES of the pattern.
e2e_pattern_sha() {
	"$CHANFS_GUEST" gen "$1" | sha256sum | awk '{ print $1 }'
}

# e2e_transfer_32mib: 32 MiB each way through one connection per
# direction (guest services 7001, 7002), every byte checked, the guest's
# SHA-256 equal to the host's.
e2e_transfer_32mib() {
	local want
	want=$(e2e_pattern_sha 32M)
	# Guest to host: read to EOF, every byte checked against the pattern.
	e2e_client read "$MNT/vsock/7001" 32M
	e2e_expect_sha "$want"
	# Host to guest: the sink replies its digest, which e2e-client compares.
	e2e_client write "$MNT/vsock/7002" 32M
	e2e_serial_wait "sink 3:7002 .* bytes 33554432 sha256 $want"
}

# e2e_concurrent_64: 64 connections at once (services 7000, 7003, 7004):
# 32 echo streams of 256 KiB, 16 reads and 16 writes of 1 MiB, all
# checked; chanfs must have been started with --backlog 128.
e2e_concurrent_64() {
	local n
	e2e_client parallel "echo:$MNT/vsock/7000:256Kx32" \
		"read:$MNT/vsock/7003:1Mx16" "write:$MNT/vsock/7004:1Mx16"
	# The guest saw the 16 sinks' bytes whole.
	n=$(grep -c "sink 3:7004 .* bytes 1048576 sha256 $(e2e_pattern_sha 1M)" "$SERIAL")
	((n == 16)) || e2e_fail "the guest reports $n whole 1 MiB sinks, not 16"
}

# e2e_poll_checks: poll and select follow the guest's readiness (services
# 7000, 7005, 7006): see poll_readiness.sh.
e2e_poll_checks() {
	e2e_client poll-echo "$MNT/vsock/7000"
	e2e_client poll-eof "$MNT/vsock/7005" 100000
	e2e_client poll-write "$MNT/vsock/7006" 4M
	e2e_serial_wait "sink 3:7006 .* bytes 4194304 sha256 $(e2e_pattern_sha 4M)"
}
