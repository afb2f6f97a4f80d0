#!/usr/bin/env bash
# Virtio-serial ports as files: two virtserialports wired to chanfs's
# `--serial`, one per socket direction — org.qemu.guest_agent.0 on QEMU's
# server socket (chanfs connects), chanfs.echo on chanfs's listening
# socket (QEMU connects).  Through serial/NAME: data both ways (exec 3<>,
# echo, cat, 256 KiB checked both ways through the guest's echo); the
# real qemu-guest-agent answers guest-sync-delimited, guest-ping and
# guest-exec; two host writers' lines reach the guest whole; QEMU ends and
# a new one starts with chanfs left running: status says disconnected,
# then connected, what was written meanwhile arrives, the agent answers
# again.  One chanfs, two boots.
. "$(dirname "$0")/lib.sh"
e2e_init

QGA_SOCK=$E2E_DIR/qga.sock     # QEMU listens (server=on), chanfs connects
ECHO_SOCK=$E2E_DIR/echo.sock   # chanfs listens, QEMU connects
QGA=$MNT/serial/org.qemu.guest_agent.0
ECHO=$MNT/serial/chanfs.echo
# A chardev client's retry delay: reconnect-ms from QEMU 9.2 on,
# reconnect (seconds) before.
read -r qmaj qmin < <("$QEMU" --version | sed -n '1s/.*version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
if ((qmaj > 9 || (qmaj == 9 && qmin >= 2))); then
	reconnect=reconnect-ms=200
else
	reconnect=reconnect=1
fi
E2E_QEMU_ARGS=(
	-device virtio-serial-pci,id=vser0
	-chardev socket,id=qga0,path="$QGA_SOCK",server=on,wait=off
	-device virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0
	-chardev socket,id=echo0,path="$ECHO_SOCK",server=off,$reconnect
	-device virtserialport,bus=vser0.0,chardev=echo0,name=chanfs.echo
)
e2e_log "QEMU: -chardev socket,...,server=on,wait=off (qga), -chardev socket,...,server=off,$reconnect (echo)"

e2e_start_chanfs --serial "org.qemu.guest_agent.0=$QGA_SOCK" \
	--serial "chanfs.echo=$ECHO_SOCK,listen"
[[ "$(stat -c %a "$ECHO_SOCK")" == 600 ]] || e2e_fail "the listening socket is not mode 0600"
[[ "$(ls "$MNT/serial")" == "chanfs.echo"$'\n'"org.qemu.guest_agent.0" ]] ||
	e2e_fail "ls serial: $(ls "$MNT/serial")"
e2e_boot serial
e2e_serial_wait 'chanfs-e2e: serial: qemu-ga pid'

status_has() { grep -q -e "$1" "$MNT/status"; }
e2e_wait "both ports connected" eval \
	'status_has "^serial org.qemu.guest_agent.0 socket connected to " &&
	 status_has "^serial chanfs.echo socket connected on "'

# --- data both ways through the guest's echo ----------------------------
out=$(timeout "$E2E_WAIT" bash -c 'exec 3<>"$1" && echo "hello, port" >&3 &&
	read -r l <&3 && echo "$l"' _ "$ECHO") || e2e_fail "exec 3<> serial/chanfs.echo failed"
[[ "$out" == "hello, port" ]] || e2e_fail "the echo port answered '$out'"
seq 1 20000 >"$E2E_DIR/seq"
bytes=$(stat -c %s "$E2E_DIR/seq")
timeout "$E2E_WAIT" head -c "$bytes" "$ECHO" >"$E2E_DIR/seq.back" &
reader=$!
cat "$E2E_DIR/seq" >"$ECHO" || e2e_fail "cat > serial/chanfs.echo failed"
echo "and one more" >"$ECHO" || e2e_fail "echo > serial/chanfs.echo failed"
wait "$reader" || e2e_fail "head -c $bytes of serial/chanfs.echo failed"
cmp -s "$E2E_DIR/seq" "$E2E_DIR/seq.back" || e2e_fail "cat through the echo came back different"
out=$(timeout "$E2E_WAIT" head -c 13 "$ECHO") || e2e_fail "head -c 13 failed"
[[ "$out" == "and one more" ]] || e2e_fail "echo > then read back: '$out'"
e2e_client echo "$ECHO" 256K

# --- two writers, lines of 1000 bytes, whole at the guest ---------------
lines=200
for tag in A B; do
	fill=$(printf '%*s' 993 '' | tr ' ' "$tag")
	for ((i = 0; i < lines; i++)); do
		printf '%s%04d-%s\n' "$tag" "$i" "$fill"
	done >"$E2E_DIR/lines.$tag"
done
timeout "$E2E_WAIT" head -c $((2 * lines * 1000)) "$ECHO" >"$E2E_DIR/lines.back" &
reader=$!
# dd writes one 1000-byte block per write(2): each goes whole into the
# port (writes up to 4 KiB are never split or interleaved).
dd if="$E2E_DIR/lines.A" of="$ECHO" bs=1000 status=none &
wa=$!
dd if="$E2E_DIR/lines.B" of="$ECHO" bs=1000 status=none &
wb=$!
wait "$wa" || e2e_fail "writer A failed"
wait "$wb" || e2e_fail "writer B failed"
wait "$reader" || e2e_fail "reading the writers' lines back failed"
awk -v n="$lines" '
	/^A[0-9][0-9][0-9][0-9]-A+$/ && length($0) == 999 { if (substr($0, 2, 4) + 0 != a++) bad++; next }
	/^B[0-9][0-9][0-9][0-9]-B+$/ && length($0) == 999 { if (substr($0, 2, 4) + 0 != b++) bad++; next }
	{ bad++ }
	END { if (bad || a != n || b != n) { printf "%d bad, A %d, B %d\n", bad, a, b; exit 1 } }
' "$E2E_DIR/lines.back" >"$E2E_DIR/lines.check" ||
	e2e_fail "two writers' lines interleaved or lost: $(cat "$E2E_DIR/lines.check")"
grep -q -m 1 '^B' "$E2E_DIR/lines.back" && grep -q -m 1 '^A' "$E2E_DIR/lines.back" ||
	e2e_fail "not both writers' lines came back"

# --- the real guest agent -----------------------------------------------
# qga_session ID: sync (0xff, then guest-sync-delimited: the answer comes
# after a 0xff, past anything stale), ping, guest-exec of echo and its
# status until it exited; prints the answers.
qga_session() {
	timeout "$E2E_WAIT" bash -c '
		id=$1
		exec 4<>"$2" || exit 1
		printf "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%d}}\n" "$id" >&4
		while read -r l <&4; do
			case $l in *"\"return\": $id}"*) echo "sync: $l"; break ;; esac
		done
		echo "{\"execute\":\"guest-ping\"}" >&4
		read -r l <&4 && echo "ping: $l"
		echo "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/echo\",\"arg\":[\"hello\",\"from\",\"qga\",\"$id\"],\"capture-output\":true}}" >&4
		read -r l <&4 && echo "exec: $l"
		pid=$(echo "$l" | sed -n "s/.*\"pid\": *\([0-9]*\).*/\1/p")
		[ -n "$pid" ] || exit 1
		for i in $(seq 1 100); do
			echo "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}" >&4
			read -r l <&4
			case $l in *"\"exited\": true"*) echo "status: $l"; exit 0 ;; esac
			sleep 0.1
		done
		exit 1
	' _ "$1" "$QGA"
}
qga_check() {
	local id=$1 out data
	# The 0xff that delimits the sync answer goes: grep reads text.
	out=$(set -o pipefail; qga_session "$id" | tr -d '\377') ||
		e2e_fail "guest agent session $id failed: $out"
	grep -q "^sync: .*{\"return\": $id}" <<<"$out" || e2e_fail "no guest-sync-delimited answer: $out"
	grep -q '^ping: {"return": {}}' <<<"$out" || e2e_fail "no guest-ping answer: $out"
	data=$(sed -n 's/^status: .*"out-data": "\([^"]*\)".*/\1/p' <<<"$out" | base64 -d)
	[[ "$data" == "hello from qga $id" ]] || e2e_fail "guest-exec printed '$data': $out"
	grep -q '"exitcode": 0' <<<"$out" || e2e_fail "guest-exec exit code: $out"
	e2e_log "guest agent $id: $(tr '\n' ' ' <<<"$out")"
}
qga_check 1111

# --- QEMU goes, chanfs stays ---------------------------------------------
e2e_stop_qemu
e2e_wait "both ports disconnected" eval \
	'status_has "^serial org.qemu.guest_agent.0 socket disconnected" &&
	 status_has "^serial chanfs.echo socket disconnected"'
echo "written while QEMU was down" >"$ECHO" || e2e_fail "a write while down failed"
e2e_log "down: $(grep '^serial ' "$MNT/status" | tr '\n' ' ')"
e2e_boot serial "$E2E_DIR/serial2.log"
e2e_serial_wait 'chanfs-e2e: serial: qemu-ga pid'
e2e_wait "both ports connected again" eval \
	'status_has "^serial org.qemu.guest_agent.0 socket connected to " &&
	 status_has "^serial chanfs.echo socket connected on "'
out=$(timeout "$E2E_WAIT" head -c 28 "$ECHO") || e2e_fail "reading after the restart failed"
[[ "$out" == "written while QEMU was down" ]] || e2e_fail "after the restart the echo gave '$out'"
qga_check 2222
e2e_client echo "$ECHO" 64K
grep -q "serial org.qemu.guest_agent.0: connected to $QGA_SOCK" "$E2E_DIR/chanfs.log" ||
	e2e_fail "no 'connected' line in chanfs's log"
n=$(grep -c 'serial org.qemu.guest_agent.0: cannot connect' "$E2E_DIR/chanfs.log")
e2e_log "chanfs's serial lines: $(grep -c 'serial ' "$E2E_DIR/chanfs.log") ($n 'cannot connect')"

e2e_pass "serial ports both ways in both socket directions; qemu-ga answers; two writers whole; a QEMU restart survived"
