# The console device (console_device.sh): chanfs's own virtio-console
# over vhost-user with the ports org.qemu.guest_agent.0, chanfs.echo and
# chanfs.blink.  The /dev/virtio-ports/NAME links are made as udev makes
# them, from /sys/class/virtio-ports/*/name; then the serial scenario's
# qemu-ga and echo run on the first two, and chanfs.blink is opened,
# written ("open"), and closed once the host answers.
i=0
until [ "$(cat /sys/class/virtio-ports/vport*/name 2>/dev/null | wc -l)" -ge 3 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { say "FAIL console: fewer than 3 named ports"; break; }
	sleep 0.1
done
mkdir -p /dev/virtio-ports
for d in /sys/class/virtio-ports/vport*; do
	n=$(cat "$d/name")
	ln -sf "../${d##*/}" "/dev/virtio-ports/$n"
	say "console: /dev/virtio-ports/$n -> ../${d##*/}"
done
. /scenarios/serial.sh
(
	# A write waits until a host file has the port open (PORT_OPEN 1).
	exec 4<>/dev/virtio-ports/chanfs.blink
	echo open >&4
	read -r line <&4
	exec 4>&-
	say "console: chanfs.blink closed after '$line'"
) &
