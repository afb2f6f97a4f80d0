#!/bin/sh
# fs/ talks to the devices only through chandir.h (issue 10, "the seam"):
# fs/*.c, fs/*.h and include/chanfs/fs.h include system headers, libfuse
# and libevent, and of chanfs's own only chan.h, chandir.h, the engine's
# loop.h and log.h (and ring.h, which chan.h is made of), fs.h and
# fs_private.h.  Any other chanfs header (vsock.h, serial.h, vu.h...) fails
# this check, naming the file and the header.
#
# usage: check_fs_includes.sh SOURCE_ROOT
root=${1:?usage: check_fs_includes.sh SOURCE_ROOT}
allowed='chanfs/chan.h chanfs/chandir.h chanfs/loop.h chanfs/log.h chanfs/ring.h chanfs/fs.h fs_private.h'
status=0
found=0
for f in "$root"/fs/*.c "$root"/fs/*.h "$root"/include/chanfs/fs.h; do
	[ -e "$f" ] || continue
	found=$((found + 1))
	# Every included name, quoted or bracketed.
	for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]\([^">]*\)[">].*/\1/p' "$f"); do
		case " $allowed " in
		*" $h "*) continue ;;
		esac
		case $h in
		chanfs/*|*.h)
			# A chanfs header not allowed, or a quoted local one.
			if [ "${h#chanfs/}" != "$h" ] ||
			   grep -q "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$h\"" "$f"; then
				echo "not ok: ${f#"$root"/} includes $h (fs/ may include only: $allowed)"
				status=1
			fi
			;;
		esac
	done
done
if [ "$found" -lt 5 ]; then
	echo "not ok: only $found fs/ files found under $root"
	exit 1
fi
[ "$status" -eq 0 ] && echo "ok: $found fs/ files include no device header"
exit "$status"
