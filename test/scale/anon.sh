#!/bin/bash
# A process's anonymous memory by where it lives, from a copy of its /proc/PID/smaps (guest-scale.sh
# keeps one per daemon and N as smaps-idle). Prints "kind KiB" lines, each the sum of the
# mappings' Anonymous: field (resident anonymous pages; RssAnon in /proc/PID/status is their total):
#   go-heap       the Go runtime's heap arenas (goroutine stacks live there too): unnamed mappings
#                 between 4 GiB and 0x7f0000000000, where Go's arena hints put them on amd64, above
#                 the binary and brk, below where mmap(2) places everything else
#   malloc-arena  glibc malloc's thread arenas: a read-write start of a 64 MiB aligned reservation
#                 whose rest is mapped ---p (HEAP_MAX_SIZE on 64-bit)
#   malloc-main   glibc's main arena, [heap] (brk)
#   thread-stack  a read-write mapping right above a ---p guard page (pthread stacks, 8 MiB each
#                 by default; only the pages a thread touched are resident)
#   other         every other private anonymous or written file-backed mapping: large malloc
#                 blocks (mmap), the Go runtime's own metadata, libraries' written data pages
#   total
# and two lines about the thread stacks: stack-thp, the KiB of them in transparent huge pages
# (AnonHugePages: a 2 MiB page under a stack khugepaged collapsed), and stacks, their number.
# Usage: test/scale/anon.sh SMAPS
set -uo pipefail
[ $# -eq 1 ] && [ -r "$1" ] || { echo "usage: $0 SMAPS" >&2; exit 2; }
awk '
function flush() {
	if (start == "") return
	kind = "other"
	if (name == "[heap]") kind = "malloc-main"
	# Stacks first: with thousands of threads mmap(2) places them below 0x7f0000000000 too.
	else if (perms ~ /^rw/ && name == "" && prev_perms == "---p" && prev_end == start && prev_size == 4) kind = "thread-stack"
	else if (name == "" && length(start) >= 9 && (length(start) < 12 || substr(start, 1, 2) < "7f")) kind = "go-heap"
	else if (perms ~ /^rw/ && name == "" && aligned64(start)) kind = "malloc-arena"
	kib[kind] += anon; total += anon
	if (kind == "thread-stack") { stacks++; stackthp += huge }
	prev_perms = perms; prev_end = end; prev_size = size
}
# aligned64 HEX: whether the address is a multiple of 64 MiB (its low 26 bits zero).
function aligned64(h,   low) {
	low = substr(h, length(h) - 6)                 # the last 7 hex digits: 28 bits
	return low ~ /^[048c]000000$/
}
/^[0-9a-f]+-[0-9a-f]+ / {
	flush()
	split($1, a, "-"); start = a[1]; end = a[2]; perms = $2; name = (NF >= 6) ? $6 : ""
	size = 0; anon = 0; huge = 0
	next
}
$1 == "Size:" { size = $2 }
$1 == "Anonymous:" { anon = $2 }
$1 == "AnonHugePages:" { huge = $2 }
END {
	flush()
	n = split("go-heap malloc-arena malloc-main thread-stack other", order, " ")
	for (i = 1; i <= n; i++) printf "%s %d\n", order[i], kib[order[i]]
	printf "total %d\n", total
	printf "stack-thp %d\nstacks %d\n", stackthp, stacks
}' "$1"
