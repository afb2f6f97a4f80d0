#!/bin/bash
# qemu_accept — the real QEMU accepts chanfs's vhost-user server as a
# vhost-user-vsock back-end.
#
# Starts chanfs-echodev (the engine as a 2-queue device whose config space is
# the guest CID) and then qemu-system-x86_64 with vhost-user-vsock-pci on its
# socket, stopped before the guest runs (-S).  Passes when QEMU realizes the
# device (it shows up on the PCI bus as virtio-vsock), the back-end's debug
# log shows the feature and protocol-feature negotiation with CONFIG accepted
# and GET_CONFIG serving CID 7, the back-end logs nothing but traces, and
# both processes exit cleanly after QMP "quit" (QEMU) and SIGTERM (back-end).
#
# Usage: qemu_accept.sh PATH-TO-chanfs-echodev
# Exit 77 (skipped) when qemu-system-x86_64 or python3 is not installed.
set -u

ECHODEV=${1:?usage: qemu_accept.sh PATH-TO-chanfs-echodev}
QEMU=${QEMU:-qemu-system-x86_64}
CID=7
# Generous limits for TCG on a loaded machine; they only bound a hang.
WAIT_TENTHS=1200

command -v "$QEMU" >/dev/null 2>&1 || { echo "SKIP: $QEMU not installed"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 not installed"; exit 77; }

dir=$(mktemp -d /tmp/qemu_accept.XXXXXX)
sock=$dir/vsock.sock
qmp=$dir/qmp.sock
blog=$dir/backend.log
qlog=$dir/qemu.log
bpid=
qpid=

cleanup() {
	[ -n "$qpid" ] && kill -KILL "$qpid" 2>/dev/null
	[ -n "$bpid" ] && kill -KILL "$bpid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- back-end log"; cat "$blog" 2>/dev/null
	echo "--- qemu log"; cat "$qlog" 2>/dev/null
	exit 1
}

# wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < WAIT_TENTHS; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	fail "gave up waiting for $what"
}

"$ECHODEV" -s "$sock" --cid "$CID" -d 2>"$blog" &
bpid=$!
wait_for "the back-end's socket" test -S "$sock"

"$QEMU" -machine q35 -accel tcg -S -display none -nodefaults \
	-object memory-backend-memfd,id=mem,size=256M,share=on \
	-numa node,memdev=mem -m 256M \
	-chardev socket,id=vs,path="$sock" \
	-device vhost-user-vsock-pci,chardev=vs,id=vsock0 \
	-qmp unix:"$qmp",server=on,wait=off >"$qlog" 2>&1 &
qpid=$!
wait_for "QEMU's QMP socket" test -S "$qmp"

# QMP: once it greets, the machine (and the device) has been created.
python3 - "$qmp" <<'EOF' || fail "QMP checks"
import json, socket, sys

s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")

def reply():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m

def cmd(name, **args):
    msg = {"execute": name}
    if args:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n")
    f.flush()
    r = reply()
    if "return" not in r:
        sys.exit("QMP %s failed: %s" % (name, r))
    return r["return"]

greeting = reply()
print("QEMU", greeting["QMP"]["version"]["qemu"])
cmd("qmp_capabilities")
props = [p["name"] for p in cmd("qom-list", path="/machine/peripheral/vsock0")]
print("vsock0 properties:", len(props))
found = False
for bus in cmd("query-pci"):
    for d in bus["devices"]:
        # virtio 1.0 vsock: vendor 0x1af4, device 0x1040 + 19
        if d["id"]["vendor"] == 0x1AF4 and d["id"]["device"] == 0x1053:
            found = True
if not found:
    sys.exit("no virtio-vsock function on the PCI bus")
tree = cmd("human-monitor-command", **{"command-line": "info qtree"})
if "vhost-user-vsock-device" not in tree:
    sys.exit("no vhost-user-vsock-device in the qtree")
cmd("quit")
EOF

wait "$qpid"
qrc=$?
qpid=
[ "$qrc" -eq 0 ] || fail "QEMU exited with status $qrc"

# The back-end sees the front-end go and keeps serving; then SIGTERM.
wait_for "the back-end to see QEMU go" grep -q "front-end disconnected" "$blog"
kill -TERM "$bpid"
wait "$bpid"
brc=$?
bpid=
[ "$brc" -eq 0 ] || fail "back-end exited with status $brc"
[ -e "$sock" ] && fail "back-end left its socket file behind"

echo "--- message sequence QEMU sent"
sed -n 's/^chanfs-echodev: vu: <- //p' "$blog"

need() {
	grep -Eq "$1" "$blog" || fail "back-end log lacks /$1/"
}
need '^chanfs-echodev: vu: <- GET_FEATURES$'
need '^chanfs-echodev: vu: -> GET_FEATURES 0x'
need '^chanfs-echodev: vu: <- GET_PROTOCOL_FEATURES$'
need '^chanfs-echodev: vu: -> GET_PROTOCOL_FEATURES 0x'
need '^chanfs-echodev: vu: <- GET_CONFIG off 0 len 8 '
need "^chanfs-echodev: echodev: served config off 0 len 8 \\(guest cid $CID\\)$"
need '^chanfs-echodev: vu: -> GET_CONFIG off 0 len 8$'

# CONFIG (bit 9) offered and accepted by QEMU.
offered=$(sed -n 's/^chanfs-echodev: vu: -> GET_PROTOCOL_FEATURES //p' "$blog" | head -1)
accepted=$(sed -n 's/^chanfs-echodev: vu: <- SET_PROTOCOL_FEATURES //p' "$blog" | head -1)
[ -n "$accepted" ] || fail "QEMU never sent SET_PROTOCOL_FEATURES"
(( (offered & 0x200) != 0 )) || fail "CONFIG not offered ($offered)"
(( (accepted & 0x200) != 0 )) || fail "QEMU did not accept CONFIG ($accepted)"

# Nothing but traces and the connection notices: no warning, no error.
bad=$(grep -Ev '^chanfs-echodev: (vu: (<-|->) |vu:    (region|fd) |vu: queue [0-9]+ (started|stopped)|vu: [^ ]+: front-end (connected \(pid [0-9]+, uid [0-9]+\)|disconnected)$|echodev: (served config|signal))' "$blog")
[ -z "$bad" ] || fail "back-end logged: $bad"

echo "PASS: QEMU $($QEMU --version | head -1 | sed 's/.*version //') accepted the back-end"
exit 0
