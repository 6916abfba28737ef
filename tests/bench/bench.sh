#!/usr/bin/env bash
# bench.sh BUILD_DIR — rkt against its peers, in one run (ratios: this
# machine is noisy). Each bench_* function measures one thing and appends
# "name<TAB>median ms<TAB>peak RSS MiB<TAB>min ms<TAB>max ms" lines to
# $results; report prints the ratios the issues set as targets. Called by
# `./build.sh bench`; BENCH_ONLY="fly big" runs some functions only,
# BENCH_RUNS sets the runs of the fast measures, BENCH_ROUNDS those of the
# big image. Peers: runc, unshare+chroot, podman (--runtime runc), a bare
# systemd-nspawn -b, sha512sum+tar, curl, and rkt 1.30 (../shared/fixtures).
set -euo pipefail
B=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /var/tmp/rkt-bench.XXXXXX)
RKT=$B/bin/rkt
FLY=$B/stage1-images/stage1-fly.aci
HOST=$B/stage1-images/stage1-host.aci
N=${BENCH_RUNS:-15}
ROUNDS=${BENCH_ROUNDS:-5}
FIXTURES=${RKT130_FIXTURES:-$ROOT/../shared/fixtures/rkt-1.30}
[ -d "$FIXTURES" ] || FIXTURES=/work/shared/fixtures/rkt-1.30
SERVE_PID=
cleanup() {
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
	for d in "$W"/data "$W"/bigdata* "$W"/scale* "$W"/up130 "$W"/net-holder; do
		[ -d "$d" ] && "$RKT" --dir="$d" gc --grace-period=0 >/dev/null 2>&1 || true
	done
	# Never remove a tree that still has something mounted in it.
	if grep -q " $W/" /proc/self/mountinfo; then
		echo "bench: mounts left under $W; not removing it" >&2
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
cd "$ROOT"
go build -o "$W/timeit" ./tests/bench/timeit
go build -o "$W/mkaci" ./aci/acibuild/mkaci
go build -o "$W/mkbig" ./tests/bench/mkbig
results=$W/results
: >"$results"
t() { "$W/timeit" "$@" | tee -a "$results"; }
D=$W/data

# rkt 1.30 runs only in a private mount namespace (its fly pods leave
# shared mounts), made rshared inside like a systemd host.
RKT130=
if [ -e "$FIXTURES/rkt.xz" ]; then
	xz -dc "$FIXTURES/rkt.xz" >"$W/rkt130" && chmod +x "$W/rkt130" && RKT130=$W/rkt130
fi
# (Its stderr without its progress bars and the warning every run of it
# prints here.)
in_private_ns() {
	unshare -m --propagation private sh -c 'mount --make-rshared / && exec "$@"' sh "$@" \
		2> >(tr '\r' '\n' | grep -v -e 'group "rkt" not found' -e '^ *$' >&2)
}
rkt130() { "$RKT130" --insecure-options=image "$@"; }
STAGE1_130=coreos.com/rkt/stage1-fly:1.30.0

# A tiny rootfs: static busybox as /bin/true.
setup_tiny() {
	mkdir -p "$W/tiny/rootfs/bin"
	cp /bin/busybox "$W/tiny/rootfs/bin/busybox"
	ln -s busybox "$W/tiny/rootfs/bin/true"
	cat >"$W/tiny/manifest.json" <<JSON
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"bench.example/true",
 "labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/true"],"user":"0","group":"0"}}
JSON
	"$W/mkaci" --manifest "$W/tiny/manifest.json" --rootfs "$W/tiny/rootfs" "$W/tiny.aci"
	ID=$("$RKT" --dir="$D" --insecure-options=image fetch "$W/tiny.aci" | tail -1)
}

bench_fly() {
	echo "# fly run of a cached image running /bin/true vs runc, unshare+chroot and rkt 1.30's fly"
	"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$FLY" "$ID" >/dev/null
	mkdir -p "$W/bundle" && cp -a "$W/tiny/rootfs" "$W/bundle/rootfs"
	(cd "$W/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' config.json)
	# In turn, round after round: the three take 3-30 ms and this
	# machine's process starts drift by 2x within minutes.
	t -n "$((2 * N))" -name fly-run -setup "$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true" -- \
		"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$FLY" "$ID" ';;' \
		-name runc-run -- runc run --bundle "$W/bundle" bench-runc ';;' \
		-name unshare-chroot -- unshare -pfmu --fork chroot "$W/tiny/rootfs" /bin/true
	if [ -n "$RKT130" ]; then
		# Its stage1 from its own store, as a user of rkt 1.30 runs it; the
		# whole loop in one namespace, so the unshare is not timed.
		local d=$W/d130
		rkt130 --dir="$d" fetch "$FIXTURES/stage1-fly.aci" >/dev/null 2>&1
		rkt130 --dir="$d" fetch "$W/tiny.aci" >/dev/null 2>&1
		in_private_ns "$W/timeit" -n "$N" -name rkt130-fly-run -- \
			"$RKT130" --insecure-options=image --dir="$d" run --stage1-name=$STAGE1_130 bench.example/true |
			tee -a "$results"
	fi
}

bench_host() {
	echo "# stage1-host pod running /bin/true vs podman run --rm (runc) and a bare systemd-nspawn -b"
	if [ ! -e "$HOST" ] || ! command -v systemd-nspawn >/dev/null; then
		echo "(no stage1-host.aci or systemd-nspawn: skipped)"
		return
	fi
	"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" "$ID" >/dev/null
	# Against the bare nspawn, which has the host's network, on the host's
	# network (host-run); against podman, which gives its container a
	# bridged network of its own, on rkt's default network
	# (host-run-default: netns, veth, IPAM, masquerade). The gc of the
	# previous pod (CNI DEL) is in -setup, not timed.
	local gc="$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true"
	t -n 10 -name host-run -setup "$gc" -- \
		"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" --net=host "$ID"
	t -n 10 -name host-run-default -setup "$gc" -- \
		"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" "$ID"
	# The same rootfs booted by hand: journald plus one app whose end
	# ends the container, from a launcher in a cgroup of its own in every
	# hierarchy (what this machine's nspawn needs: environment.md).
	"$RKT" --dir="$D" image extract --rootfs-only coreos.com/rkt/stage1-host "$W/bare" >/dev/null
	cp /bin/busybox "$W/bare/usr/bin/true"
	mkdir -p "$W/bare/etc/systemd/system"
	cat >"$W/bare/etc/systemd/system/app.service" <<UNIT
[Unit]
DefaultDependencies=no
SuccessAction=exit
FailureAction=exit
[Service]
Type=oneshot
ExecStart=/usr/bin/true
UNIT
	printf '[Unit]\nWants=systemd-journald.socket app.service\n' >"$W/bare/etc/systemd/system/default.target"
	cat >"$W/nspawn-bare" <<'SH'
#!/bin/sh
for h in /sys/fs/cgroup/*/; do
	d="${h}machine.slice/machine-bench.scope"
	mkdir -p "$d" 2>/dev/null && echo $$ >"$d/cgroup.procs" 2>/dev/null
done
exec systemd-nspawn -q --register=no --keep-unit -b -D "$1" >/dev/null 2>&1
SH
	chmod +x "$W/nspawn-bare"
	t -n 10 -name nspawn-bare -- "$W/nspawn-bare" "$W/bare"
	if ! command -v podman >/dev/null; then
		echo "(podman not installed: apt-get install podman; skipped)"
		return
	fi
	# Debian's podman here: runc (crun refuses the hybrid cgroups), no
	# CAP_SYS_RESOURCE (ulimits), private storage.
	local p=$W/podman
	mkdir -p "$p"
	tar -C "$W/tiny/rootfs" -cf "$p/rootfs.tar" .
	local pm="podman --root $p/root --runroot $p/runroot --tmpdir $p/tmp --runtime runc"
	$pm import "$p/rootfs.tar" bench-true >/dev/null 2>&1
	t -n 10 -name podman-run -- $pm run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 bench-true /bin/true
	$pm rmi -a -f >/dev/null 2>&1 || true
}

# big_round R: one round of first runs of the big image, each side in a
# fresh directory. Nothing is deleted between rounds (cleanup does it):
# ext4 without a journal, as here, scans past inodes deleted in the last
# ~30 s on every create, which made the first runs swing 2x.
big_round() {
	local r=$1 flush="sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; cat $W/big.aci >/dev/null"
	t -n 1 -name big-first-run -setup "$flush" -- \
		"$RKT" --dir="$W/bigdata$r" --insecure-options=image run --stage1-path="$FLY" "$W/big.aci"
	t -n 1 -name sha512sum+tar -setup "mkdir $W/x$r; $flush" -- sh -c "sha512sum $W/big.aci >/dev/null && tar -xf $W/big.aci -C $W/x$r"
	if [ -n "$RKT130" ]; then
		rkt130 --dir="$W/d130big$r" fetch "$FIXTURES/stage1-fly.aci" >/dev/null 2>&1
		eval "$flush"
		in_private_ns "$W/timeit" -n 1 -name rkt130-big-first-run -- \
			"$RKT130" --insecure-options=image --dir="$W/d130big$r" run --stage1-name=$STAGE1_130 "$W/big.aci" |
			tee -a "$results"
	fi
}

bench_big() {
	echo "# first run of a 200 MiB, 10,000-file image vs sha512sum + tar -x and rkt 1.30 ($ROUNDS rounds, interleaved)"
	"$W/mkbig" -size 200 -files 10000 -out "$W/big.aci"
	local raw=$results
	results=$W/big-raw
	for r in $(seq "$ROUNDS"); do big_round "$r"; done
	results=$raw
	summarize "$W/big-raw" big-first-run sha512sum+tar rkt130-big-first-run
}

# summarize RAW NAME...: the median over RAW's one-run lines of each NAME,
# the spread as the fastest and slowest of them, appended to $results.
# (Not `tee /dev/stderr`: that opens the file again with O_TRUNC when
# stderr is redirected to a file, and the log loses what came before.)
summarize() {
	local raw=$1 name out
	shift
	out=$(for name in "$@"; do
		grep -P "^\Q$name\E\t" "$raw" | sort -t$'\t' -k2 -n | awk -F'\t' -v name="$name" '
			{ms[NR]=$2; if ($3>rss) rss=$3}
			END { if (NR) printf "%s\t%.1f\t%.1f\t%.1f\t%.1f\n", name, ms[int((NR+1)/2)], rss, ms[1], ms[NR] }'
	done)
	[ -n "$out" ] || return 0
	printf '%s\n' "$out" | sed 's/^/median: /' >&2
	printf '%s\n' "$out" >>"$results"
}

# The second runs of both images, interleaved one by one with gc and a
# sync before each (the first runs leave gigabytes of dirty pages whose
# writeback would otherwise slow whichever image is timed first): both
# make the same ~1,050 system calls, none of them over the image's files.
bench_second() {
	# Half as many runs again as the other fast measures: under load these
	# are bimodal (13 ms, or 30-200 ms waiting for a CPU).
	local d=$W/bigdata1 i img raw=$results n=$((N * 3 / 2))
	echo "# second run of the big image vs the tiny one (by file path, $n interleaved pairs)"
	[ -e "$W/big.aci" ] || "$W/mkbig" -size 200 -files 10000 -out "$W/big.aci"
	"$RKT" --dir="$d" --insecure-options=image run --stage1-path="$FLY" "$W/big.aci" >/dev/null
	"$RKT" --dir="$d" --insecure-options=image run --stage1-path="$FLY" "$W/tiny.aci" >/dev/null
	results=$W/second-raw
	# The order alternates pair by pair: whichever runs second in a pair
	# runs after the other's gc and sync, and a fixed order weighed on one
	# side (medians 12.2 against 10.7 ms with the fastest runs at 1.00).
	local order
	for i in $(seq "$n"); do
		order="big tiny"
		[ $((i % 2)) -eq 0 ] && order="tiny big"
		for img in $order; do
			t -n 1 -name "$img-second-run" -setup "$RKT --dir=$d gc --grace-period=0 >/dev/null 2>&1 || true; sync" -- \
				"$RKT" --dir="$d" --insecure-options=image run --stage1-path="$FLY" "$W/$img.aci"
		done
	done
	results=$raw
	summarize "$W/second-raw" big-second-run tiny-second-run
}

# populate DIR N: N exited fly pods (each keeps its two overlay mounts
# until gc, as with rkt) and N prepared ones. A script, so that timeit's
# -setup can run it too.
cat >"$W/populate" <<SH
#!/bin/sh
set -e
"$RKT" --dir="\$1" --insecure-options=image fetch "$W/tiny.aci" >/dev/null
for _ in \$(seq "\$2"); do
	"$RKT" --dir="\$1" --insecure-options=image run --stage1-path="$FLY" bench.example/true >/dev/null
	"$RKT" --dir="\$1" --insecure-options=image prepare --stage1-path="$FLY" bench.example/true >/dev/null
done
SH
chmod +x "$W/populate"
populate() { "$W/populate" "$@"; }

bench_scale() {
	echo "# list of N prepared + N exited pods; gc of the N exited ones (per pod), N = 100 and 1,000"
	for n in 100 1000; do
		local d=$W/scale$n
		populate "$d" "$n"
		t -n 5 -name "list-$n" -- "$RKT" --dir="$d" list
		t -n 5 -name "list-json-$n" -- "$RKT" --dir="$d" list --format=json
		t -n 5 -name "status-$n" -- "$RKT" --dir="$d" status "$(ls "$d/pods/run" | head -1)"
		# A gc of all the exited pods, reported per pod: for 100 pods the
		# median of 3, each of a directory populated afresh (untimed).
		local runs=1
		[ "$n" = 100 ] && runs=3
		"$W/timeit" -n "$runs" -name "gc-$n" \
			-setup "[ \$TIMEIT_RUN = 0 ] || $W/populate $d-\$TIMEIT_RUN $n" -- \
			sh -c 'd=$1; [ "$TIMEIT_RUN" = 0 ] || d=$1-$TIMEIT_RUN; exec "$0" --dir="$d" gc --grace-period=0 >/dev/null 2>&1' "$RKT" "$d" |
			awk -F'\t' -v n="$n" 'BEGIN{OFS="\t"} {print $1"-per-pod", $2/n, $3, $4/n, $5/n}' | tee -a "$results"
		rm -rf "$d" "$d"-*
	done
}

# bench_upgrade (issue 13): list of the same 1,000 exited + 1,000 prepared
# pods by us and by rkt 1.30, and the one-time migration of a rkt 1.30
# store holding the 200 MiB image.
bench_upgrade() {
	[ -n "$RKT130" ] || { echo "# upgrade: no rkt 1.30 fixtures in $FIXTURES, skipped"; return; }
	echo "# list of 1,000+1,000 pods vs rkt 1.30; migration of a rkt 1.30 store with the 200 MiB image"
	local d=$W/scaleup
	populate "$d" 1000
	t -n 5 -name up-list-1000 -- "$RKT" --dir="$d" list
	t -n 5 -name rkt130-list-1000 -- "$RKT130" --dir="$d" list
	"$RKT" --dir="$d" gc --grace-period=0 --expire-prepared=0 >/dev/null 2>&1 || true
	[ -e "$W/big.aci" ] || "$W/mkbig" -size 200 -files 10000 -out "$W/big.aci"
	local m=$W/up130
	rkt130 --dir="$m" fetch "$W/big.aci" >/dev/null 2>&1
	"$W/timeit" -n 1 -name up-migrate-first -- "$RKT" --dir="$m" image migrate | tee -a "$results"
}

bench_fetch() {
	echo "# verified fetch of the 200 MiB image from a loopback HTTPS server vs curl | sha512sum"
	[ -e "$W/big.aci" ] || "$W/mkbig" -size 200 -files 10000 -out "$W/big.aci"
	go build -o "$W/fetchserve" ./tests/bench/fetchserve
	"$W/fetchserve" -image "$W/big.aci" -dir "$W/serve" &
	SERVE_PID=$!
	for _ in $(seq 300); do [ -e "$W/serve/env" ] && break; sleep 0.1; done
	. "$W/serve/env"
	"$RKT" --local-config="$W/fetchcfg" trust --root --skip-fingerprint-review "$KEY" >/dev/null 2>&1
	# Both through sh, progress lines dropped.
	t -n 3 -name https-fetch -setup "rm -rf $W/fetchdata" -- \
		sh -c "SSL_CERT_FILE=$CA $RKT --dir=$W/fetchdata --local-config=$W/fetchcfg fetch $URL 2>/dev/null"
	t -n 3 -name curl+sha512sum -- sh -c "curl -s --noproxy '*' --cacert $CA $URL | sha512sum"

	echo "# docker:// re-fetch of an unchanged image (layers downloaded, from the registry's count)"
	local dd=$W/dockerdata
	# aci/docker does not create its work directory in a fresh --dir yet.
	mkdir -p "$dd/tmp/fetch"
	"$RKT" --dir="$dd" --insecure-options=image,http fetch "$DOCKER" >/dev/null 2>&1
	local before after
	before=$(curl -s --noproxy '*' "$STATS")
	t -n 3 -name docker-refetch -- sh -c "$RKT --dir=$dd --insecure-options=image,http fetch --pull-policy=update $DOCKER 2>/dev/null"
	after=$(curl -s --noproxy '*' "$STATS")
	printf 'docker-refetch-blobs\t%d\t0\t0\t0\n' "$((after - before))" | tee -a "$results"
	kill "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=
}

bench_net() {
	echo "# stage1-host pod of /bin/true on rkt's default network (netns, ptp veth, host-local IP, subnet masquerade) vs --net=host, interleaved"
	if [ ! -e "$HOST" ] || ! command -v systemd-nspawn >/dev/null; then
		echo "(no stage1-host.aci or systemd-nspawn: skipped)"
		return
	fi
	"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" "$ID" >/dev/null
	# Alone on the default network, each run installs its subnet's
	# masquerade rule (the previous pod's gc removed it).
	t -n 5 -name "host-run-net-default-first" -setup "$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true" -- \
		"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" --net=default "$ID"
	# As on a host with pods: one sleeping on the default network (its own
	# --dir, out of the gc's way) holds the rule.
	local hd=$W/net-holder
	"$RKT" --dir="$hd" --insecure-options=image run --stage1-path="$HOST" --net=default "$ID" \
		--exec=/bin/busybox -- sleep 3600 >/dev/null 2>&1 &
	local holder=$!
	sleep 5
	# The gc of the previous pod (CNI DEL) is in -setup, not timed. Host
	# and default in turn, run after run, 15 of each: in blocks of five the
	# machine's drift alone made the difference swing from -8 to +43 ms
	# (the network itself costs ~12 ms: netns, ptp and host-local).
	local gc="$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true"
	for round in 1 2; do
		t -n 15 -name "host-run-net-host-$round" -setup "$gc" -- \
			"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" --net=host "$ID" ';;' \
			-name "host-run-net-default-$round" -setup "$gc" -- \
			"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" --net=default "$ID"
	done
	for u in $("$RKT" --dir="$hd" list --no-legend --full 2>/dev/null | awk '{print $1}'); do
		"$RKT" --dir="$hd" stop --force "$u" >/dev/null 2>&1 || true
	done
	wait "$holder" 2>/dev/null || true
	"$RKT" --dir="$hd" gc --grace-period=0 >/dev/null 2>&1 || true
}

report() {
	echo "# ratios (targets in parentheses; spread = slowest/fastest run)"
	awk -F'\t' '{ms[$1]=$2; rss[$1]=$3; lo[$1]=$4; hi[$1]=$5}
	function r(label, a, b, target) {
		if (ms[a] > 0 && ms[b] > 0)
			printf "%-34s %6.2f (%s)  [%s %.1f ms %.1f-%.1f; %s %.1f ms %.1f-%.1f]\n", label, ms[a]/ms[b], target, a, ms[a], lo[a], hi[a], b, ms[b], lo[b], hi[b]
	}
	function v(label, a, target) {
		if (a in ms) printf "%-34s %6.1f ms (%s)  [%.1f-%.1f]\n", label, ms[a], target, lo[a], hi[a]
	}
	END {
		r("fly-run / runc-run", "fly-run", "runc-run", "<= 0.6")
		r("fly-run / unshare-chroot", "fly-run", "unshare-chroot", "<= 3")
		r("fly-run / rkt130-fly-run", "fly-run", "rkt130-fly-run", "<= 0.35")
		r("host-run / nspawn-bare", "host-run", "nspawn-bare", "<= 1.3")
		r("host-run-default / podman-run", "host-run-default", "podman-run", "<= 0.8")
		for (k = 1; k <= 2; k++) if (("host-run-net-default-" k) in ms)
			printf "%-34s %6.1f ms (<= 25 ms)  [default %.1f ms, host %.1f ms, ratio %.2f]\n", "--net=default minus --net=host #" k,
				ms["host-run-net-default-" k] - ms["host-run-net-host-" k], ms["host-run-net-default-" k], ms["host-run-net-host-" k],
				ms["host-run-net-default-" k] / ms["host-run-net-host-" k]
		if ("host-run-net-default-first" in ms && "host-run-net-host-1" in ms)
			printf "%-34s %6.1f ms  [default, first pod on it, %.1f ms]\n", "--net=default (alone) minus host #1",
				ms["host-run-net-default-first"] - ms["host-run-net-host-1"], ms["host-run-net-default-first"]
		r("big-first-run / sha512sum+tar", "big-first-run", "sha512sum+tar", "<= 1.5")
		r("big-first-run / rkt130-big-first", "big-first-run", "rkt130-big-first-run", "<= 0.5")
		r("big-second / tiny-second", "big-second-run", "tiny-second-run", "<= 1.2")
		# Under load the second runs are bimodal (13 ms, or 30-200 ms when
		# they wait for a CPU): the fastest runs show the work itself.
		if (lo["big-second-run"] > 0 && lo["tiny-second-run"] > 0)
			printf "%-34s %6.2f (same work: ~1)\n", "  fastest runs", lo["big-second-run"]/lo["tiny-second-run"]
		r("https-fetch / curl+sha512sum", "https-fetch", "curl+sha512sum", "<= 1.5")
		r("list 1,000+1,000 / rkt 1.30 list", "up-list-1000", "rkt130-list-1000", "< 1")
		v("migrating a rkt 1.30 store, 200 MiB", "up-migrate-first", "once")
		v("list, 100+100 pods", "list-100", "")
		v("list, 1,000+1,000 pods", "list-1000", "<= 200 ms")
		v("list --format=json, 1,000+1,000", "list-json-1000", "<= 200 ms")
		v("status of one pod among 1,000+1,000", "status-1000", "")
		v("gc per pod, 100", "gc-100-per-pod", "<= 10 ms")
		v("gc per pod, 1,000", "gc-1000-per-pod", "<= 10 ms, flat")
		if ("docker-refetch-blobs" in ms) printf "docker re-fetch blob downloads     %d (0)\n", ms["docker-refetch-blobs"]
		printf "peak RSS of rkt, MiB (<= 40): fly-run %.1f, big-first-run %.1f, list-1000 %.1f, gc-1000 %.1f\n",
			rss["fly-run"], rss["big-first-run"], rss["list-1000"], rss["gc-1000-per-pod"]
	}' "$results"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
setup_tiny
# scale comes after fetch: removing its thousands of pods leaves the disk
# busy with discards for a while, which the fetch's 200 MiB of writes would
# otherwise queue behind (it measured 1.75x curl right after scale, 1.2-1.3x
# alone). Each measure starts with the previous one's writes synced.
for f in ${BENCH_ONLY:-big fly host net second fetch scale upgrade}; do
	sync
	"bench_$f"
	echo "# load average after $f: $(cut -d' ' -f1-3 /proc/loadavg)"
done
report
