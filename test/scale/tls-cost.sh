#!/bin/bash
# What linking librbd and librados costs every thread of the process, on this machine: their
# static TLS (readelf's TLS segment: about 13 KB for librbd, librados and libceph-common) is
# placed in each new thread's stack mapping and zeroed when the thread is created, so each
# thread, librados' own included, holds those pages resident. gotcmu links them (go-ceph's cgo);
# tcmu-runner dlopen()s its rbd handler, so the libraries' TLS is dynamic: allocated, from malloc,
# only for a thread that uses it. One small C program, three ways: no librbd, librbd dlopen()ed,
# librbd linked; each starts THREADS idle threads and sums its thread stacks' resident anonymous
# KiB from /proc/self/smaps (test/scale/anon.sh's thread-stack kind).
# Usage: test/scale/tls-cost.sh   (prints "variant KiB-per-thread" lines; needs cc and librbd-dev)
# Env:   THREADS (default 500)
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
THREADS=${THREADS:-500}
W=$(mktemp -d /tmp/gotcmu-tls.XXXXXX)
trap 'rm -rf "$W"' EXIT
cat > "$W/t.c" <<'C'
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void *idle(void *a) { (void)a; pause(); return NULL; }
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	if (argc > 3 && !dlopen(argv[3], RTLD_NOW | RTLD_GLOBAL)) { fprintf(stderr, "%s\n", dlerror()); return 1; }
	for (int i = 0; i < n; i++) { pthread_t t; if (pthread_create(&t, NULL, idle, NULL)) return 1; }
	char cmd[256]; snprintf(cmd, sizeof cmd, "cat /proc/%d/smaps > %s", getpid(), argv[2]);
	return system(cmd) != 0;
}
C
cc -O2 -o "$W/plain" "$W/t.c" -ldl -lpthread
cc -O2 -o "$W/linked" "$W/t.c" -Wl,--no-as-needed -lrbd -lrados -ldl -lpthread
# awk reads all of ldconfig's list: leaving early would kill ldconfig with SIGPIPE, which
# pipefail turns into this script's failure (seen once in some runs, 2026-12-06 08:28).
lib=$(ldconfig -p | awk '$1 == "librbd.so.1" && p == "" { p = $NF } END { print p }')
for v in plain dlopen linked; do
	case $v in
	plain) "$W/plain" "$THREADS" "$W/smaps" ;;
	dlopen) "$W/plain" "$THREADS" "$W/smaps" "$lib" ;;
	linked) "$W/linked" "$THREADS" "$W/smaps" ;;
	esac
	awk -v v="$v" -v n="$THREADS" '$1 == "thread-stack" { printf "%s %.1f\n", v, $2 / n }' <("$HERE/anon.sh" "$W/smaps")
done
for f in librbd.so.1 librados.so.2 libceph-common.so.2; do
	p=$(ldconfig -p | awk -v f="$f" '$1 == f && p == "" { p = $NF } END { print p }')
	[ -n "$p" ] || p=$(find /usr/lib -name "$f" -print -quit)
	m=$(readelf -lW "$p" | awk '$1 == "TLS" { print $6 }')
	echo "tls $f $((m))"
done
