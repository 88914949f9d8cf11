#!/bin/bash
# The tables and curves of `make scale` from the guest's rows.tsv (test/scale/guest-scale.sh).
# Usage: report.sh DIR MD PNG   DIR holds rows.tsv (and meta); writes MD and PNG (gnuplot).
# Several runs can feed one report: every DIR/rows*.tsv is read, and a (daemon, N) pair
# measured twice keeps the last file's line; each file's meta* is listed under "Runs". A
# notes.md there (written by hand after the run) goes in as "Notes on this run".
set -uo pipefail
# shellcheck source=test/scale/spec.sh
. "$(dirname "$(readlink -f "$0")")/spec.sh"
[ $# -eq 3 ] || { echo "usage: $0 DIR MD PNG" >&2; exit 2; }
DIR=$1 MD=$2 PNG=$3
shopt -s nullglob
files=("$DIR"/rows*.tsv)
[ ${#files[@]} -gt 0 ] || { echo "report: no $DIR/rows*.tsv" >&2; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# One line per (daemon, n), the last seen wins; sorted by daemon then n.
awk -F'\t' 'FNR == 1 { next } { k = $1 SUBSEP $2; if (!(k in row)) order[++n] = k; row[k] = $0 }
	END { for (i = 1; i <= n; i++) print row[order[i]] }' "${files[@]}" | sort -t$'\t' -k1,1 -k2,2n > "$W/rows"

# turns_with NAME: "DAEMON N PATH" for each row whose turn directory holds a non-empty NAME.
turns_with() {
	local d n
	while IFS=$'\t' read -r d n _; do
		[ ! -s "$DIR/$d-n$n/$1" ] || echo "$d $n $DIR/$d-n$n/$1"
	done < "$W/rows"
}

{
	echo "# gotcmu and tcmu-runner with N user:rbd LUNs (issue 16)"
	echo
	echo "Written by \`make scale\` (test/scale/scale.sh) from the run below: one guest boot under qemu TCG"
	echo "(software emulation, 2 vCPUs: only ratios between rows of one boot mean anything), Ceph inside"
	echo "the guest (micro-ceph, one memstore OSD), N images of the same size, the N LUNs of one tcm_loop"
	echo "target; each daemon alone, in turn, for each N. \`gotcmu-ipcK\` is gotcmu with"
	echo "\`rbd_images_per_client = K\` (1 is the default: one RADOS client per image, as tcmu-runner);"
	echo "\`gotcmu-ipcK-pP\` the same with the Go runtime's GOMAXPROCS set to P, \`-aA\` with glibc's"
	echo "MALLOC_ARENA_MAX set to A, \`-thp\` with \`transparent_hugepages = true\` (the kernel's policy; \`false\`, no"
	echo "transparent huge pages for the daemon, is the default since 1f3b2f8: rows of earlier runs are relabelled)."
	echo
	echo "## Runs"
	echo
	for m in "$DIR"/meta*; do sed 's/^/    /' "$m"; echo; done
	# What the run was asked for and has no line for, and what failed.
	# relabel.txt (written with the data set): "TAG LABEL@N NEWLABEL" for rows of meta-TAG's run
	# renamed since (a default that changed).
	missing=$(for m in "$DIR"/meta*; do
			tag=${m##*/meta}; tag=${tag#-}
			sed -n "s/^run: NS=\(.*\) DAEMONS=\(.*\) SIZE_MB=.*/$tag|\1|\2/p" "$m"
		done |
		while IFS='|' read -r tag ns daemons; do
			for n in $ns; do
				for spec in $daemons; do
					spec_at "$spec" "$n" || continue
					d=$(spec_fields "$spec" | cut -d' ' -f5)
					[ -s "$DIR/relabel.txt" ] && d=$(awk -v t="$tag" -v k="$d@$n" -v d="$d" '$1 == t && $2 == k { d = $3 } END { print d }' "$DIR/relabel.txt")
					awk -F'\t' -v d="$d" -v n="$n" '$1 == d && $2 == n { f = 1 } END { exit !f }' "$W/rows" || echo "$d N=$n"
				done
			done
		done)
	fails=$(cat "$DIR"/summary*.txt 2>/dev/null | grep '^FAIL' | cut -c1-300)
	# notes.md beside rows.tsv: what the person who ran it found out about this run.
	if [ -s "$DIR/notes.md" ]; then
		echo "## Notes on this run"
		echo
		cat "$DIR/notes.md"
		echo
	fi
	if [ -n "$missing$fails" ]; then
		echo "## Not measured"
		echo
		[ -n "$missing" ] && { echo "Asked for and without a line below:"; echo; sed 's/^/- /' <<< "$missing"; echo; }
		[ -n "$fails" ] && { echo "Failures the run reported (a figure shown as - is one of these):"; echo; sed 's/^/- /' <<< "$fails"; echo; }
	fi
	echo "## Start-up and recovery"
	echo
	echo "create: every backstore enabled and linked as a LUN, one after the other as targetcli does;"
	echo "answer: from the same start until every LUN has answered a 4 KiB read (test/cmd/lunready);"
	echo "first write: then 4 KiB written to every LUN at once, until the last answered (user:rbd takes"
	echo "each image's exclusive lock on its first write; every daemon and N has fresh images);"
	echo "adopt: from starting the daemon again after SIGKILL until every LUN has answered a read (no"
	echo "exclusive lock is taken over for a read; with several adoptions a turn, their median, the lower of the middle two of an even count; each in"
	echo "the turn's adopts.txt); SIGTERM: until the daemon exited, with its N devices open and idle (the"
	echo "LUNs already out of the target)."
	echo
	echo "| daemon | N | create s | all answer s | first write s | adopt after SIGKILL s | SIGTERM to exit s |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, ($21 == "" ? "-" : $21), $19, $20 }' "$W/rows"
	echo
	if compgen -G "$DIR/*/adopts.txt" > /dev/null; then
		echo "Each adoption after SIGKILL (the turn's adopts.txt; runs after 2026-12-06 15:00): gotcmu's"
		echo "open_concurrency for it (default 8; - for tcmu-runner), the time until every LUN answered, the reads"
		echo "lunready saw fail before that (errors an application gets), the disks' completions other than"
		echo "GOOD (BUSY, CHECK CONDITION, host errors) and commands timed out, from the SCSI midlayer's"
		echo "counters (sysfs ioerr_cnt, iotmo_cnt), and the guest's CPU time over the adoption by user, system"
		echo "and softirq, in % of both CPUs."
		echo
		echo "| daemon | N | open_concurrency | adopt s | read errors | not GOOD | timed out | user % | system % | softirq % |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		turns_with adopts.txt | while read -r d n f; do
			awk -v d="$d" -v n="$n" 'NR > 1 { o = (d ~ /^gotcmu/) ? ($2 == "-" ? "8" : $2) : "-"
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, n, o, $3, $4, $5, $6, $7, $8, $9 }' "$f"
		done
		echo
	fi
	echo "## Resources, idle, all LUNs served"
	echo
	echo "RSS from /proc/PID/status: anonymous (heaps, thread stacks), file (the program and its"
	echo "libraries, and whatever of the uio mappings is counted: the rings and data areas are kernel"
	echo "pages mapped through /dev/uioN, not tmpfs), shmem (RssShmem, as the issue asked). Threads:"
	echo "the daemon's OS threads; RADOS clients: its threads named msgr-worker-0 (one per librados"
	echo "client). Goroutines from gotcmu's metrics endpoint (go_goroutines)."
	echo
	echo "RSS anon is inexact for these daemons: on the guest's 6.1 kernel /proc/PID/status sums"
	echo "per-thread caches synced every 64 page events (proc(5) calls the fields inaccurate), up to"
	echo "64 pages a thread off, 250 MiB at 1,000 threads. Rows with a by-kind split below (smaps,"
	echo "which walks the page tables) have the exact total there; guest-scale.sh takes RSS anon from"
	echo "smaps_rollup for runs after 2026-12-06."
	echo
	echo "Idle switches: the daemon's context switches a second (all threads) over 5 s with no IO."
	echo
	echo "| daemon | N | RSS anon MiB | RSS file MiB | RSS shmem MiB | threads | goroutines | fds | RADOS clients | idle switches/s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' 'function mib(k) { return (k == "-" || k == "") ? "-" : sprintf("%.1f", k / 1024) }
		{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, mib($5), mib($6), mib($7), $8, $9, $10, $11, (NF < 26 || $26 == "") ? "-" : $26 }' "$W/rows"
	echo
	echo "Per LUN, from the smallest to the largest N each daemon reached (the difference divided by the"
	echo "difference in N):"
	echo
	echo "| daemon | N | RSS anon KiB per LUN | threads per LUN | fds per LUN |"
	echo "|---|---|---:|---:|---:|"
	awk -F'\t' '{ if (!($1 in lo)) { lo[$1] = $0; ds[++n] = $1 } hi[$1] = $0 }
		END { for (i = 1; i <= n; i++) { split(lo[ds[i]], a, "\t"); split(hi[ds[i]], b, "\t"); dn = b[2] - a[2]
			if (dn <= 0) { printf "| %s | %s | - | - | - |\n", ds[i], a[2]; continue }
			printf "| %s | %s to %s | %.0f | %.1f | %.1f |\n", ds[i], a[2], b[2], (b[5] - a[5]) / dn, (b[8] - a[8]) / dn, (b[10] - a[10]) / dn } }' "$W/rows"
	if compgen -G "$DIR/*/smaps-idle" > /dev/null || compgen -G "$DIR/*/anon-idle.txt" > /dev/null; then
		echo
		echo "Anonymous memory idle, by where it lives (test/scale/anon.sh over /proc/PID/smaps; MiB): the Go"
		echo "runtime's heap arenas with the goroutine stacks, glibc malloc's thread arenas and main heap"
		echo "(librados' and librbd's allocations, gotcmu's cgo), OS thread stacks, and the rest (large"
		echo "malloc blocks, the Go runtime's metadata, libraries' written pages). Of the thread stacks: the MiB"
		echo "in transparent huge pages (stacks khugepaged collapsed into a 2 MiB page; gotcmu's"
		echo "transparent_hugepages = false turns them off for its process), and the KiB a stack holds in 4 KiB"
		echo "pages (all stacks but those huge pages, over the number of stacks)."
		echo
		echo "| daemon | N | Go heap | malloc arenas | malloc main heap | thread stacks | of which huge pages | KiB a stack in 4 KiB pages | other | total |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		# anon-idle.txt: anon.sh's output kept in place of a large smaps (test/results/scale-data).
		while IFS=$'\t' read -r d n _; do
			f=$DIR/$d-n$n/anon-idle.txt
			if [ ! -s "$f" ]; then
				[ -s "$DIR/$d-n$n/smaps-idle" ] || continue
				"$(dirname "$(readlink -f "$0")")/anon.sh" "$DIR/$d-n$n/smaps-idle" > "$W/anon" || continue
				f=$W/anon
			fi
			awk -v d="$d" -v n="$n" '{ k[$1] = $2; v[$1] = sprintf("%.1f", $2 / 1024) }
				END { thp = ("stack-thp" in k) ? v["stack-thp"] : "-"
					per = (k["stacks"] > 0) ? sprintf("%.1f", (k["thread-stack"] - k["stack-thp"]) / k["stacks"]) : "-"
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, n, v["go-heap"], v["malloc-arena"],
						v["malloc-main"], v["thread-stack"], thp, per, v["other"], v["total"] }' "$f"
		done < "$W/rows"
	fi
	# tls-cost.txt (scale.sh's host step): test/scale/tls-cost.sh's lines.
	if [ -s "$DIR/tls-cost.txt" ]; then
		echo
		echo "What a thread's stack holds when the process links librbd (test/scale/tls-cost.sh on the host: a C"
		echo "program's idle threads, resident KiB each by smaps): the libraries' static TLS is placed in every"
		echo "new thread's stack and zeroed there. gotcmu links librbd and librados (go-ceph's cgo), so each of"
		echo "its threads, librados' own included, holds it; tcmu-runner dlopen()s its rbd handler, whose TLS is"
		echo "then allocated from malloc only for the threads that use it."
		echo
		awk '$1 == "tls" { tls += $3; libs = libs (libs == "" ? "" : ", ") $2 " " $3 } $1 != "tls" { kib[$1] = $2 }
			END { printf "| no librbd | librbd dlopen()ed | librbd linked | static TLS, bytes |\n|---:|---:|---:|---|\n"
				printf "| %s | %s | %s | %d (%s) |\n", kib["plain"], kib["dlopen"], kib["linked"], tls, libs }' "$DIR/tls-cost.txt"
	fi
	echo
	echo "## Aggregate load"
	echo
	echo "fio, one job per LUN (libaio, O_DIRECT), 4 KiB random 70 % read / 30 % write, iodepth 4 each"
	echo "(at most 256 commands in flight in all: iodepth 1 at N = 256, column QD; the one memstore OSD of the"
	echo "emulated guest answered 1,024 slower than the 30 s op timeout),"
	echo "the run's FIO_SECS seconds after a 2 s ramp; IOPS read + write of all jobs, p99 completion latency of fio's group"
	echo "report; RSS (VmRSS) right after."
	echo
	echo "| daemon | N | QD | IOPS | p99 read ms | p99 write ms | RSS after load MiB |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' 'function ms(u) { return (u == "-" || u == "") ? "-" : sprintf("%.1f", u / 1000) }
		{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, (NF < 29 || $29 == "") ? 4 : $29, $15, ms($16), ms($17), ($18 == "-" ? "-" : sprintf("%.1f", $18 / 1024)) }' "$W/rows"
	echo
	echo "The cost of that load, from /proc over the whole fio run (ramp included): the daemon's CPU"
	echo "time (all its threads, librados' included) and context switches per IO the disks completed"
	echo "(/sys/block/*/stat), the daemon's CPUs busy (1.00 = one CPU), and the share of the guest's"
	echo "two CPUs that was busy (1.00: saturated; then IOPS follow what each IO costs the guest and"
	echo "how the kernel's scheduler shares it out). - : a run before these columns existed."
	echo
	echo "| daemon | N | CPU µs per IO | switches per IO | daemon CPUs | guest busy |"
	echo "|---|---:|---:|---:|---:|---:|"
	awk -F'\t' 'function v(i) { return (i > NF || $i == "") ? "-" : $i }
		{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, v(22), v(23), v(24), v(25) }' "$W/rows"
	echo
	# Each row's place in its boot (its line in its rows file): the guest drifts over a boot.
	awk -F'\t' 'FNR == 1 { f++; next } { print $1 "\t" $2 "\t" f "\t" FNR - 1 }' "${files[@]}" > "$W/turns"
	# A daemon measured twice in one boot (spec #2: label-2), the turns in ABBA order.
	if awk -F'\t' '$1 ~ /-2$/ { f = 1 } END { exit !f }' "$W/rows"; then
		echo "### The same daemons twice in one boot"
		echo
		echo "In every boot the aggregate IOPS rose with a turn's place in it, whichever daemon ran (the"
		echo "guest's OSD spent less CPU per IO turn after turn: the per-IO tables below), so one turn per"
		echo "daemon measures the order as much as the daemon. A label ending in -2 is the same daemon's"
		echo "second turn in that boot; the turns ran in ABBA order (turn: its place in the boot), so the"
		echo "mean of a daemon's two turns is compared with the other's."
		echo
		echo "| daemon | N | turns | IOPS of each turn | mean IOPS | daemon CPU µs per IO, each turn | mean |"
		echo "|---|---:|---|---|---:|---|---:|"
		awk -F'\t' 'NR == FNR { turn[$1 SUBSEP $2] = $4; next }
			{ d = $1; sub(/-2$/, "", d); k = d SUBSEP $2; if (!(k in seen)) order[++n] = k; seen[k] = 1
				t[k] = t[k] (t[k] == "" ? "" : ", ") turn[$1 SUBSEP $2]; io[k] = io[k] (io[k] == "" ? "" : ", ") $15
				c[k] = c[k] (c[k] == "" ? "" : ", ") $22; m[k] += $15; cm[k] += $22; cnt[k]++ }
			END { for (i = 1; i <= n; i++) { k = order[i]; if (cnt[k] < 2) continue; split(k, a, SUBSEP)
				printf "| %s | %s | %s | %s | %.0f | %s | %.0f |\n", a[1], a[2], t[k], io[k], m[k] / cnt[k], c[k], cm[k] / cnt[k] } }' \
			"$W/turns" "$W/rows"
		echo
	fi
	# threads-load.txt, procs-load.txt, osd-*.txt (guest-scale.sh): where an IO's CPU went.
	if compgen -G "$DIR/*/threads-load.txt" > /dev/null; then
		echo "### Where an IO's CPU goes"
		echo
		echo "Over the same load, CPU µs per IO (and, in brackets, times scheduled in per IO) by kind of"
		echo "thread, from /proc/PID/task/*/schedstat: the daemon's own (gotcmu: every Go runtime thread;"
		echo "tcmu-runner: its cmdproc-uio device threads), librados' messengers (msgr-worker), librbd's and"
		echo "librados' completions (io_context_pool), their timers (safe_timer); the daemon in all; the"
		echo "guest's OSD in all and its op threads (tp_osd_tp), and its client ops per IO (perf dump)."
		echo
		echo "| daemon | N | turn | own | msgr-worker | io_context_pool | safe_timer | daemon | OSD | OSD tp_osd_tp | OSD ops per IO |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		while IFS=$'\t' read -r d n _; do
			L=$DIR/$d-n$n
			[ -s "$L/threads-load.txt" ] || continue
			tn=$(awk -F'\t' -v d="$d" -v n="$n" '$1 == d && $2 == n { t = $4 } END { print t }' "$W/turns")
			awk -v d="$d" -v n="$n" -v tn="$tn" -v osdt="$L/osd-threads-load.txt" -v osd="$L/osd-load.txt" -v procs="$L/procs-load.txt" '
				function cell(k) { return (k in us) ? sprintf("%s (%.2f)", us[k], runs[k]) : "-" }
				{ k = $1; if (k == "gotcmu" || k ~ /^cmdproc-uio/) k = "own"; us[k] = $4; runs[k] = $5 }
				END { while ((getline l < osdt) > 0) { split(l, x, " "); if (x[1] == "tp_osd_tp") tp = sprintf("%s (%.2f)", x[4], x[5]) }
					while ((getline l < osd) > 0) { split(l, x, " "); if (x[1] == "op") ops = x[2] }
					while ((getline l < procs) > 0) { split(l, x, " "); if (x[1] == "ceph-osd") o = x[4] }
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", d, n, tn, cell("own"), cell("msgr-worker-N"),
						cell("io_context_pool"), cell("safe_timer"), cell("all"), (o == "" ? "-" : o), (tp == "" ? "-" : tp), (ops == "" ? "-" : ops) }' \
				"$L/threads-load.txt"
		done < "$W/rows"
		echo
	fi
	# image-cost.txt (scale.sh's host step): BenchmarkImageCost's lines.
	if [ -s "$DIR/image-cost.txt" ]; then
		echo "## One idle image's cost, on this machine (not the guest)"
		echo
		echo "rbd's BenchmarkImageCost, each configuration in a process of its own against a micro Ceph on this"
		echo "machine: 16 images opened and idle, the process's RssAnon, OS threads and RADOS clients"
		echo "(msgr-worker-0 threads) and fds before and after, per image. go-ceph is librados and librbd"
		echo "alone, a client per image (the floor for any handler that keeps a client per image). gotcmu's"
		echo "handler runs here without a device loop, so each image's completion goroutine waits in poll(2)"
		echo "on a thread of its own: one thread per image more than in the daemon, whose loop polls instead."
		echo "go-ceph-registered adds the image's service-map entry on its client (tcmu-runner's layout);"
		echo "go-ceph-mon-op-timeout sets rados_mon_op_timeout and runs the two mon commands gotcmu runs at"
		echo "open (the pool's device class): librados then arms a timer on the client's io_context, whose"
		echo "reactor holds an epoll set, an eventfd and a timerfd (fds per image, 3 more than go-ceph's)."
		echo "images-per-client-K is gotcmu's rbd handler at rbd_images_per_client K (each image of a shared"
		echo "client keeps a small connection for its service-map entry, which ceph-iscsi reads); its own fd"
		echo "here is the completion eventfd (in the daemon the device loop adds an epoll set, a wake eventfd"
		echo "and a timerfd)."
		echo
		echo "C heap: what glibc malloc has allocated (mallinfo2), the arenas' free memory left out."
		echo
		echo "| configuration | anon KiB per image | C heap KiB per image | threads per image | fds per image | RADOS clients for 16 images |"
		echo "|---|---:|---:|---:|---:|---:|"
		awk '/^BenchmarkImageCost\// { name = $1; sub(/^BenchmarkImageCost\//, "", name); sub(/-[0-9]+$/, "", name)
			delete v; for (i = 3; i < NF; i += 2) v[$(i + 1)] = $i
			printf "| %s | %s | %s | %s | %s | %s |\n", name, v["anon-KiB/image"], ("c-heap-KiB/image" in v) ? v["c-heap-KiB/image"] : "-",
				v["threads/image"], ("fds/image" in v) ? v["fds/image"] : "-", v["rados-clients"] }' "$DIR/image-cost.txt"
		echo
	fi
	echo "## gotcmu's status views"
	echo
	echo "One scrape of the metrics endpoint (curl, series = lines that are not comments) and one"
	echo "\`gotcmu status\` (over D-Bus), idle."
	echo
	echo "| daemon | N | metrics series | scrape ms | gotcmu status ms |"
	echo "|---|---:|---:|---:|---:|"
	awk -F'\t' '$1 ~ /^gotcmu/ { printf "| %s | %s | %s | %s | %s |\n", $1, $2, $12, $13, $14 }' "$W/rows"
	echo
	echo "## Ceph's service map"
	echo
	echo "Each LUN's entry under the tcmu-runner service (what ceph-iscsi's rbd-target-api and the"
	echo "dashboard read), counted in one \`ceph service dump\` while idle, and that command's time (the"
	echo "ceph CLI's own start-up included)."
	echo
	echo "| daemon | N | entries | ceph service dump ms |"
	echo "|---|---:|---:|---:|"
	awk -F'\t' 'function v(i) { return (i > NF || $i == "") ? "-" : $i }
		{ printf "| %s | %s | %s | %s |\n", $1, $2, v(27), v(28) }' "$W/rows"
	if command -v go > /dev/null && compgen -G "$DIR/gotcmu*/cpu.pprof" > /dev/null; then
		echo
		echo "## Where gotcmu's CPU time goes under the load"
		echo
		echo "A CPU profile (--debug-addr, net/http/pprof) of each gotcmu row during a second fio run of the"
		echo "same load, so that the profiler is in no figure above. Busy: the profile's samples over its"
		echo "duration (1.00 = one CPU). Each sample is put on the function it was in (its own frame):"
		echo "gotcmu's handler and uio packages (the command path), its rbd package (the cgo glue), the Go"
		echo "runtime and system calls, and C (librbd, librados, libceph-common, libc, libstdc++)."
		echo
		echo "| daemon | N | busy CPUs | handler + uio | rbd (Go) | Go runtime, syscalls | C libraries | other |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		turns_with cpu.pprof | while read -r d n f; do
			go tool pprof -top -nodecount=100000 "$f" 2> /dev/null | awk -v d="$d" -v n="$n" '
				/^Duration:/ { dur = $2 + 0; tot = $6; t = 1; if (tot ~ /ms$/) t = 0.001; sub(/m?s$/, "", tot); tot *= t }
				$1 ~ /s$/ && $2 ~ /%$/ && NF >= 6 { v = $1; u = 1; if (v ~ /ms$/) u = 0.001; sub(/m?s$/, "", v); v *= u
					f = $6; for (i = 7; i <= NF; i++) f = f " " $i
					if (f ~ /gotcmu\/gotcmu\/(handler|uio)/) c["hu"] += v
					else if (f ~ /gotcmu\/gotcmu\/rbd/) c["rbd"] += v
					else if (f ~ /^\[/) c["c"] += v
					else if (f ~ /^(runtime|internal|syscall|golang.org\/x\/sys)/) c["rt"] += v
					else c["o"] += v }
				function pc(x) { return tot > 0 ? sprintf("%.0f %%", 100 * x / tot) : "-" }
				END { if (dur > 0) printf "| %s | %s | %.2f | %s | %s | %s | %s | %s |\n", d, n, tot / dur, pc(c["hu"]), pc(c["rbd"]), pc(c["rt"]), pc(c["c"]), pc(c["o"]) }'
		done
	fi
	echo
	echo "The curves: $(basename "$PNG")."
} > "$MD"

# The curves: one data file per daemon (N, threads, anon MiB, adopt s, IOPS, answer s).
plots=()
for d in $(cut -f1 "$W/rows" | sort -u); do
	awk -F'\t' -v d="$d" '$1 == d { print $2, $8, ($5 == "-" ? "NaN" : $5 / 1024), ($19 == "-" ? "NaN" : $19), ($15 == "-" ? "NaN" : $15), ($4 == "-" ? "NaN" : $4) }' "$W/rows" > "$W/$d.dat"
	plots+=("$d")
done
{
	echo "set terminal pngcairo size 1200,900 font ',10'"
	echo "set output '$PNG'"
	echo "set multiplot layout 2,2 title 'user:rbd LUNs per daemon, one guest boot under qemu TCG (issue 16)'"
	echo "set logscale x 2; set xlabel 'LUNs (N)'; set grid; set key top left"
	i=0
	for spec in "2:OS threads" "3:RSS anonymous, MiB" "4:adopt after SIGKILL, s (all LUNs answer)" "5:aggregate IOPS (4k 70/30, QD4 per LUN, QD1 at 256)"; do
		col=${spec%%:*}; title=${spec#*:}
		echo "set title '$title'"
		printf 'plot '
		sep=""
		for d in "${plots[@]}"; do
			printf "%s'%s' using 1:%s with linespoints title '%s'" "$sep" "$W/$d.dat" "$col" "$d"
			sep=", "
		done
		echo
		i=$((i + 1))
	done
	echo "unset multiplot"
} > "$W/scale.gp"
gnuplot "$W/scale.gp" || { echo "report: gnuplot failed" >&2; exit 1; }
echo "report: $MD and $PNG"
