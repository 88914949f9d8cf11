# shellcheck shell=bash
# Sourced by test/scale/guest-scale.sh and report.sh: what a DAEMONS spec means.
# A spec is NAME[:K[:P]][@N,N...]: NAME gotcmu or tcmu-runner; for gotcmu, K is
# rbd_images_per_client (default 1) and P, when given, the Go runtime's GOMAXPROCS; @N,N...
# limits the spec to those N.

# spec_at SPEC N: true when SPEC runs at N.
spec_at() {
	[[ $1 != *@* ]] || [[ ",${1#*@}," == *",$2,"* ]]
}

# spec_fields SPEC: prints "NAME K P LABEL" (P is - when not given); LABEL names the rows
# (gotcmu-ipcK, gotcmu-ipcK-pP, tcmu-runner).
spec_fields() {
	local s=${1%%@*} name k=1 p=- label
	name=${s%%:*}
	if [[ $s == *:* ]]; then
		s=${s#*:}; k=${s%%:*}
		[[ $s == *:* ]] && p=${s#*:}
	fi
	label=$name
	if [ "$name" = gotcmu ]; then
		label=gotcmu-ipc$k
		[ "$p" = - ] || label=$label-p$p
	fi
	echo "$name $k $p $label"
}
