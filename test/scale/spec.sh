# shellcheck shell=bash
# Sourced by test/scale/guest-scale.sh and report.sh: what a DAEMONS spec means.
# A spec is NAME[:K[:P[:A[:H]]]][@N,N...]: NAME gotcmu or tcmu-runner; for gotcmu, K is
# rbd_images_per_client (default 1), P the Go runtime's GOMAXPROCS and A glibc's
# MALLOC_ARENA_MAX (- or absent: the default), H nothp for transparent_hugepages = false (gotcmu's
# default is true); @N,N... limits the spec to those N.

# spec_at SPEC N: true when SPEC runs at N.
spec_at() {
	[[ $1 != *@* ]] || [[ ",${1#*@}," == *",$2,"* ]]
}

# spec_fields SPEC: prints "NAME K P A LABEL H" (P, A and H are - when not given); LABEL names
# the rows (gotcmu-ipcK, gotcmu-ipcK-pP, gotcmu-ipcK-aA, gotcmu-ipcK-pP-aA, with -nothp after any
# of them; tcmu-runner).
spec_fields() {
	local name k p a h label
	IFS=: read -r name k p a h <<< "${1%%@*}"
	k=${k:-1} p=${p:--} a=${a:--} h=${h:--}
	label=$name
	if [ "$name" = gotcmu ]; then
		label=gotcmu-ipc$k
		[ "$p" = - ] || label=$label-p$p
		[ "$a" = - ] || label=$label-a$a
		[ "$h" = - ] || label=$label-$h
	fi
	echo "$name $k $p $a $label $h"
}
