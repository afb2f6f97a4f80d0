#!/usr/bin/env bash
# qemu-vsock.sh SOCKET KERNEL INITRD [APPEND] — boot a guest whose
# virtio-vsock device is chanfs's, listening on SOCKET.  The command line
# chanfs's demo and e2e tests use: q35, memfd-shared RAM (vhost-user needs
# it), the kernel booted directly (an uncompressed vmlinux boots through
# PVH), the serial console on stdio.  KVM when /dev/kvm is usable, TCG
# otherwise.  Ctrl-A X quits.
set -euo pipefail
sock=${1:?usage: qemu-vsock.sh SOCKET KERNEL INITRD [APPEND]}
kernel=${2:?usage: qemu-vsock.sh SOCKET KERNEL INITRD [APPEND]}
initrd=${3:?usage: qemu-vsock.sh SOCKET KERNEL INITRD [APPEND]}
append=${4:-console=ttyS0 quiet}
mem=${QEMU_MEM:-256M}
accel=tcg
[[ -w /dev/kvm ]] && accel=kvm
exec qemu-system-x86_64 -machine q35 -accel "$accel" -m "$mem" \
	-nodefaults -no-user-config -display none -no-reboot \
	-object memory-backend-memfd,id=mem,size="$mem",share=on \
	-numa node,memdev=mem \
	-chardev socket,id=vsock0,path="$sock" \
	-device vhost-user-vsock-pci,chardev=vsock0 \
	-serial mon:stdio \
	-kernel "$kernel" -initrd "$initrd" -append "$append"
