#!/usr/bin/env bash
# The console device on the newest stack (QEMU >= 10.2 fronts it with
# vhost-user-test-device-pci): chanfs serves a virtio-console with three
# named ports over its own vhost-user socket; the guest's virtio_console
# probes it and names /dev/vportNp0..2 (/dev/virtio-ports/NAME links made
# from sysfs, as udev would); 1 MiB through chanfs.echo both ways, every
# byte checked; the real qemu-guest-agent on org.qemu.guest_agent.0
# answers guest-ping and guest-exec through serial/org.qemu.guest_agent.0;
# the guest's open and close of chanfs.blink show in status.
. "$(dirname "$0")/lib.sh"
e2e_init
if [[ "$E2E_STACK" != current ]]; then
	echo "SKIP: QEMU 7.2 cannot front a vhost-user virtio-console"
	exit 77
fi
CON=$E2E_DIR/console.sock
QGA=$MNT/serial/org.qemu.guest_agent.0
e2e_start_chanfs --console-socket "$CON" --port org.qemu.guest_agent.0 \
	--port chanfs.echo --port chanfs.blink
E2E_QEMU_ARGS=(-chardev socket,id=con0,path="$CON"
	-device vhost-user-test-device-pci,chardev=con0,virtio-id=3,num_vqs=8,config_size=12)
e2e_boot console
for p in org.qemu.guest_agent.0:0 chanfs.echo:1 chanfs.blink:2; do
	e2e_serial_wait "console: /dev/virtio-ports/${p%:*} -> ../vport[0-9]*p${p#*:}"
done
status_has() { grep -q -e "$1" "$MNT/status"; }

# Data both ways through the guest's echo, every byte checked.
e2e_wait "the guest to open chanfs.echo" \
	status_has 'serial chanfs.echo console port 1, guest open'
e2e_client echo "$MNT/serial/chanfs.echo" 1M

# The guest agent, through one host file kept open: its replies are
# collected by a reader in the background.
exec 5<>"$QGA"
cat <&5 >"$E2E_DIR/qga.out" &
QGA_READER=$!
qga() {
	local n
	n=$(grep -c . "$E2E_DIR/qga.out")
	printf '%s\n' "$1" >&5
	e2e_wait "qemu-ga's answer to $1" \
		eval '(( $(grep -c . "$E2E_DIR/qga.out") > n ))'
	QGA_REPLY=$(tail -n 1 "$E2E_DIR/qga.out")
}
e2e_wait "qemu-ga to open its port" \
	status_has 'serial org.qemu.guest_agent.0 console port 0, guest open'
qga '{"execute":"guest-sync","arguments":{"id":4242}}'
[[ "$QGA_REPLY" == *'"return": 4242'* ]] || e2e_fail "guest-sync: $QGA_REPLY"
qga '{"execute":"guest-ping"}'
[[ "$QGA_REPLY" == *'"return": {}'* ]] || e2e_fail "guest-ping: $QGA_REPLY"
qga '{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","echo hi-from-exec"],"capture-output":true}}'
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' <<<"$QGA_REPLY")
[[ -n "$pid" ]] || e2e_fail "guest-exec: $QGA_REPLY"
for ((i = 0; i < 100; i++)); do
	qga "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}"
	[[ "$QGA_REPLY" == *'"exited": true'* ]] && break
	sleep 0.2
done
# "hi-from-exec\n" in base64.
[[ "$QGA_REPLY" == *'"exitcode": 0'* && "$QGA_REPLY" == *'"out-data": "aGktZnJvbS1leGVjCg=="'* ]] ||
	e2e_fail "guest-exec-status: $QGA_REPLY"
e2e_log "qemu-ga: guest-ping answered, guest-exec pid $pid: $QGA_REPLY"
exec 5>&-
kill "$QGA_READER" 2>/dev/null
wait "$QGA_READER" 2>/dev/null

# The guest opens chanfs.blink (its write waits for a host file), says
# "open", and closes it when the host answers: both show in status.
exec 6<>"$MNT/serial/chanfs.blink"
line=$(timeout "$E2E_WAIT" bash -c 'read -r l && echo "$l"' <&6)
[[ "$line" == open ]] || e2e_fail "chanfs.blink: read '$line', not 'open'"
status_has 'serial chanfs.blink console port 2, guest open (opened 1 times)' ||
	e2e_fail "status does not show chanfs.blink open by the guest: $(grep chanfs.blink "$MNT/status")"
echo close >&6
e2e_serial_wait "console: chanfs.blink closed after 'close'"
e2e_wait "status to show chanfs.blink closed by the guest" \
	status_has 'serial chanfs.blink console port 2, guest closed (opened 1 times)'
exec 6>&-
grep -e '^console:' -e '^serial' "$MNT/status" | while read -r l; do e2e_log "status: $l"; done
e2e_pass "console device: 3 named ports, 1 MiB echoed, qemu-ga answered ping and exec, guest open/close in status"
