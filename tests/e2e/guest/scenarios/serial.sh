# Virtio-serial ports (serial_ports.sh): the real qemu-guest-agent on
# org.qemu.guest_agent.0, and an echo on the port chanfs.echo: what the
# host writes comes back, in order, in whatever pieces cat read it.
# A port reads EOF while its host side is not connected (Linux's
# virtio_console), so the echo opens the port once and runs cat again
# after every EOF.
vport() {
	for d in /sys/class/virtio-ports/vport*; do
		[ "$(cat "$d/name" 2>/dev/null)" = "$1" ] &&
			{ echo "/dev/${d##*/}"; return 0; }
	done
	return 1
}
i=0
until qga_dev=$(vport org.qemu.guest_agent.0) && echo_dev=$(vport chanfs.echo) &&
	[ -c "$qga_dev" ] && [ -c "$echo_dev" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { say "FAIL serial: ports org.qemu.guest_agent.0 and chanfs.echo not found"; break; }
	sleep 0.1
done
mkdir -p /tmp/qga /var/run
qemu-ga -m virtio-serial -p "$qga_dev" -t /tmp/qga -f /tmp/qga.pid \
	>/tmp/qga.log 2>&1 &
qga_pid=$!
(
	exec 3<>"$echo_dev"
	eof=0
	while :; do
		cat <&3 >&3
		[ $eof = 1 ] || say "serial: the echo's cat ended (EOF: the host side is not connected)"
		eof=1
		sleep 0.2
	done
) &
sleep 0.5
if kill -0 "$qga_pid" 2>/dev/null; then
	say "serial: qemu-ga pid $qga_pid on $qga_dev, echo on $echo_dev"
else
	say "FAIL serial: qemu-ga exited: $(cat /tmp/qga.log)"
fi
