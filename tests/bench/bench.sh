#!/usr/bin/env bash
# bench.sh BUILD_DIR — rkt against its peers, in one run (ratios: this
# machine is noisy). Prints "name<TAB>median ms<TAB>peak RSS MiB" lines and
# the ratios the issues set as targets. Called by `./build.sh bench`.
set -euo pipefail
B=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /var/tmp/rkt-bench.XXXXXX)
cleanup() {
	for d in "$W"/data "$W"/bigdata; do
		[ -d "$d" ] && "$1/bin/rkt" --dir="$d" gc --grace-period=0 >/dev/null 2>&1 || true
	done
	rm -rf "$W"
}
trap 'cleanup "$B"' EXIT
cd "$ROOT"
go build -o "$W/timeit" ./tests/bench/timeit
go build -o "$W/mkaci" ./aci/acibuild/mkaci
go build -o "$W/mkbig" ./tests/bench/mkbig
RKT=$B/bin/rkt
FLY=$B/stage1-images/stage1-fly.aci
N=${BENCH_RUNS:-15}

# A tiny rootfs: static busybox as /bin/true.
mkdir -p "$W/tiny/rootfs/bin"
cp /bin/busybox "$W/tiny/rootfs/bin/busybox"
ln -s busybox "$W/tiny/rootfs/bin/true"
cat >"$W/tiny/manifest.json" <<JSON
{"acKind":"ImageManifest","acVersion":"0.8.11","name":"bench.example/true",
 "labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
 "app":{"exec":["/bin/true"],"user":"0","group":"0"}}
JSON
"$W/mkaci" --manifest "$W/tiny/manifest.json" --rootfs "$W/tiny/rootfs" "$W/tiny.aci"

results=$W/results
: >"$results"
t() { "$W/timeit" "$@" | tee -a "$results"; }

echo "# fly run of a cached image running /bin/true vs runc and unshare+chroot"
D=$W/data
ID=$("$RKT" --dir="$D" --insecure-options=image fetch "$W/tiny.aci" | tail -1)
"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$FLY" "$ID" >/dev/null
t -n "$N" -name fly-run -setup "$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true" -- \
	"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$FLY" "$ID"
mkdir -p "$W/bundle" && cp -a "$W/tiny/rootfs" "$W/bundle/rootfs"
(cd "$W/bundle" && runc spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/' config.json)
t -n "$N" -name runc-run -- runc run --bundle "$W/bundle" bench-runc
t -n "$N" -name unshare-chroot -- unshare -pfmu --fork chroot "$W/tiny/rootfs" /bin/true

echo "# stage1-host pod running /bin/true vs a bare systemd-nspawn -b of the same stage1 rootfs"
HOST=$B/stage1-images/stage1-host.aci
if [ -e "$HOST" ] && command -v systemd-nspawn >/dev/null; then
	"$RKT" --dir="$D" --insecure-options=image run --stage1-path="$HOST" "$ID" >/dev/null
	t -n 10 -name host-run -setup "$RKT --dir=$D gc --grace-period=0 >/dev/null 2>&1 || true" -- \
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
	if command -v podman >/dev/null; then
		echo "(podman found: not measured yet; see README)"
	fi
else
	echo "(no stage1-host.aci or systemd-nspawn: skipped)"
fi

echo "# first run of a 200 MiB, 10,000-file image vs sha512sum + tar -x"
"$W/mkbig" -size 200 -files 10000 -out "$W/big.aci"
t -n 3 -name big-first-run -setup "$RKT --dir=$W/bigdata gc --grace-period=0 >/dev/null 2>&1; rm -rf $W/bigdata; sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; cat $W/big.aci >/dev/null" -- \
	"$RKT" --dir="$W/bigdata" --insecure-options=image run --stage1-path="$FLY" "$W/big.aci"
t -n 3 -name sha512sum+tar -setup "rm -rf $W/x; mkdir $W/x" -- sh -c "sha512sum $W/big.aci >/dev/null && tar -xf $W/big.aci -C $W/x"

echo "# second run of the big image vs the tiny one (by file path)"
"$RKT" --dir="$W/bigdata" --insecure-options=image run --stage1-path="$FLY" "$W/big.aci" >/dev/null
"$RKT" --dir="$W/bigdata" --insecure-options=image run --stage1-path="$FLY" "$W/tiny.aci" >/dev/null
t -n "$N" -name big-second-run -setup "$RKT --dir=$W/bigdata gc --grace-period=0 >/dev/null 2>&1 || true" -- \
	"$RKT" --dir="$W/bigdata" --insecure-options=image run --stage1-path="$FLY" "$W/big.aci"
t -n "$N" -name tiny-second-run -setup "$RKT --dir=$W/bigdata gc --grace-period=0 >/dev/null 2>&1 || true" -- \
	"$RKT" --dir="$W/bigdata" --insecure-options=image run --stage1-path="$FLY" "$W/tiny.aci"

echo "# verified fetch of the 200 MiB image from a loopback HTTPS server vs curl | sha512sum"
go build -o "$W/fetchserve" ./tests/bench/fetchserve
"$W/fetchserve" -image "$W/big.aci" -dir "$W/serve" &
SERVE_PID=$!
trap 'kill "$SERVE_PID" 2>/dev/null || true; cleanup "$B"' EXIT
for _ in $(seq 300); do [ -e "$W/serve/env" ] && break; sleep 0.1; done
. "$W/serve/env"
"$RKT" --local-config="$W/fetchcfg" trust --root --skip-fingerprint-review "$KEY" >/dev/null 2>&1
# Both through sh, progress lines dropped.
t -n 3 -name https-fetch -setup "rm -rf $W/fetchdata" -- \
	sh -c "SSL_CERT_FILE=$CA $RKT --dir=$W/fetchdata --local-config=$W/fetchcfg fetch $URL 2>/dev/null"
t -n 3 -name curl+sha512sum -- sh -c "curl -s --noproxy '*' --cacert $CA $URL | sha512sum"

echo "# docker:// re-fetch of an unchanged image (layers downloaded, from the registry's count)"
DD=$W/dockerdata
# aci/docker does not create its work directory in a fresh --dir yet.
mkdir -p "$DD/tmp/fetch"
"$RKT" --dir="$DD" --insecure-options=image,http fetch "$DOCKER" >/dev/null 2>&1
before=$(curl -s --noproxy '*' "$STATS")
t -n 3 -name docker-refetch -- sh -c "$RKT --dir=$DD --insecure-options=image,http fetch --pull-policy=update $DOCKER 2>/dev/null"
after=$(curl -s --noproxy '*' "$STATS")
printf 'docker-refetch-blobs\t%d\t0\n' "$((after - before))" | tee -a "$results"
kill "$SERVE_PID" 2>/dev/null || true

echo "# ratios (targets in parentheses)"
awk -F'\t' '{ms[$1]=$2; rss[$1]=$3}
END {
	printf "fly-run / runc-run            %.2f (<= 0.6)\n", ms["fly-run"]/ms["runc-run"]
	printf "fly-run / unshare-chroot      %.2f (<= 3)\n", ms["fly-run"]/ms["unshare-chroot"]
	if (ms["nspawn-bare"] > 0) printf "host-run / nspawn-bare         %.2f (<= 1.3)\n", ms["host-run"]/ms["nspawn-bare"]
	printf "big-first-run / sha512sum+tar %.2f (<= 1.5)\n", ms["big-first-run"]/ms["sha512sum+tar"]
	printf "big-second / tiny-second      %.2f (<= 1.2)\n", ms["big-second-run"]/ms["tiny-second-run"]
	printf "https-fetch / curl+sha512sum  %.2f (<= 1.5)\n", ms["https-fetch"]/ms["curl+sha512sum"]
	printf "docker re-fetch blob downloads %d (0)\n", ms["docker-refetch-blobs"]
	printf "peak RSS of rkt (fly-run, big-first-run): %.1f, %.1f MiB (<= 40)\n", rss["fly-run"], rss["big-first-run"]
}' "$results"
