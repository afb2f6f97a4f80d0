#!/usr/bin/env bash
# Test 8: the ring features the stack negotiates, read from chanfs's own
# status after the checksummed 32 MiB transfers, the 64 concurrent
# connections and the poll checks ran on one guest.
#   current  (in_order=on, Linux >= 7.0) VIRTIO_F_IN_ORDER (bit 35) is
#            negotiated on both rings and chanfs wrote fewer used entries
#            than buffers (one per batch); the guest's 64 KiB writes
#            arrived as single packets split over several descriptors
#            (Linux >= 6.17).
#   stable   (QEMU 7.2, Linux 6.1) IN_ORDER is not negotiated and every
#            buffer has its own used entry.
. "$(dirname "$0")/lib.sh"
e2e_init
e2e_start_chanfs --backlog 128
e2e_boot services

e2e_transfer_32mib
e2e_concurrent_64
e2e_poll_checks

cp "$MNT/status" "$E2E_DIR/status.txt" || e2e_fail "cannot read $MNT/status"
grep 'ring vsock' "$E2E_DIR/status.txt" | sed "s/^ */e2e[$E2E_NAME]: /"
# ring NAME: features 0xF, IN_ORDER on|off, B buffers used in U used
# entries, largest chain D descriptors N bytes
ring() {
	local q=$1 line
	line=$(grep -m 1 "ring vsock q$q:" "$E2E_DIR/status.txt") ||
		e2e_fail "status has no line for ring vsock q$q"
	read -r features inorder buffers used descs bytes < <(echo "$line" |
		sed -E 's/.*features (0x[0-9a-f]+), IN_ORDER (on|off), ([0-9]+) buffers used in ([0-9]+) used entries, largest chain ([0-9]+) descriptors ([0-9]+) bytes.*/\1 \2 \3 \4 \5 \6/')
	[[ "$bytes" =~ ^[0-9]+$ ]] || e2e_fail "cannot parse: $line"
}
for q in 0 1; do
	ring $q
	bit35=$(((features >> 35) & 1))
	((buffers > 0)) || e2e_fail "ring q$q used no buffers"
	if [[ "$E2E_STACK" == current ]]; then
		((bit35 == 1)) && [[ "$inorder" == on ]] ||
			e2e_fail "ring q$q: VIRTIO_F_IN_ORDER not negotiated (features $features) with in_order=on"
		((used < buffers)) ||
			e2e_fail "ring q$q: $used used entries for $buffers buffers: no batch was ever written as one entry"
	else
		((bit35 == 0)) && [[ "$inorder" == off ]] ||
			e2e_fail "ring q$q: VIRTIO_F_IN_ORDER negotiated (features $features) on the stable stack"
		((used == buffers)) ||
			e2e_fail "ring q$q: $used used entries for $buffers buffers without IN_ORDER"
	fi
	e2e_log "ring q$q: features $features, IN_ORDER $inorder, $buffers buffers in $used used entries"
done
# q1 carries the guest's packets: a 64 KiB write is one packet of a
# 44-byte header and 65536 bytes of data.
((bytes >= 44 + 65536)) ||
	e2e_fail "the largest guest packet was $bytes bytes: no 64 KiB write arrived whole"
if [[ "$E2E_STACK" == current ]]; then
	((descs >= 3)) ||
		e2e_fail "the largest guest packet used $descs descriptors: Linux >= 6.17 splits data over 32 KiB"
fi
e2e_pass "features $features on $E2E_STACK; transfers, 64 connections and poll intact"
