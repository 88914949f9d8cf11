# shellcheck shell=bash
# Sourced by test/scale/guest-scale.sh and report.sh: what a DAEMONS spec means.
# A spec is NAME[:K[:P[:A[:H[:S[:O]]]]]][#TAG][@N,N...]: NAME gotcmu or tcmu-runner; for gotcmu, K is
# rbd_images_per_client (default 1), P the Go runtime's GOMAXPROCS and A glibc's
# MALLOC_ARENA_MAX (- or absent: the default), H thp for transparent_hugepages = true (nothp: false,
# gotcmu's default since 1f3b2f8), S sysmon for the Go runtime's own sysmon (GODEBUG=schedtrace=0:
# cmd/gotcmu/sysmon.go keeps it awake otherwise), O gotcmu's open_concurrency (- or absent: its default); #TAG tells apart two turns of the same daemon in one boot (its label gets
# -TAG: DAEMONS="tcmu-runner gotcmu:1 gotcmu:1#2 tcmu-runner#2" runs each twice, in an order that
# cancels a drift of the guest over the boot); @N,N... limits the spec to those N.

# spec_at SPEC N: true when SPEC runs at N.
spec_at() {
	[[ $1 != *@* ]] || [[ ",${1#*@}," == *",$2,"* ]]
}

# spec_fields SPEC: prints "NAME K P A LABEL H S O" (P, A, H, S and O are - when not given); LABEL
# names the rows (gotcmu-ipcK, gotcmu-ipcK-pP, gotcmu-ipcK-aA, gotcmu-ipcK-pP-aA, with -thp or
# -nothp, then -sysmon, then -oO, after any of them; tcmu-runner; then -TAG).
spec_fields() {
	local name k p a h s o label spec=${1%%@*} tag=
	if [[ $spec == *#* ]]; then
		tag=${spec#*#} spec=${spec%%#*}
	fi
	IFS=: read -r name k p a h s o <<< "$spec"
	k=${k:-1} p=${p:--} a=${a:--} h=${h:--} s=${s:--} o=${o:--}
	label=$name
	if [ "$name" = gotcmu ]; then
		label=gotcmu-ipc$k
		[ "$p" = - ] || label=$label-p$p
		[ "$a" = - ] || label=$label-a$a
		[ "$h" = - ] || label=$label-$h
		[ "$s" = - ] || label=$label-$s
		[ "$o" = - ] || label=$label-o$o
	fi
	[ -z "$tag" ] || label=$label-$tag
	echo "$name $k $p $a $label $h $s $o"
}
