#!/usr/bin/env bash
# build.sh — build, demo, test, benchmark and install rkt.
#
#   ./build.sh            build build/bin/rkt, build/stage1-images/*.aci and
#                         the sample image build/images/hello.aci
#   ./build.sh demo       build, then run the sample image in a pod (root)
#   ./build.sh test       install what the tests need (apt), build, run all tests
#   ./build.sh lint       gofmt, go mod tidy and staticcheck must find nothing
#   ./build.sh test-host  the host-dependent functional tests in a Debian 12 guest
#                         (systemd PID 1, pure cgroup v2) under qemu (tests/vm;
#                         also part of `test`)
#   ./build.sh bench      run the benchmarks against their peers (root)
#   ./build.sh install    install to /usr/bin and /usr/lib/rkt with dist/ files
#   ./build.sh deb        build build/deb/rkt_<version>_<arch>.deb (dist/deb)
#   ./build.sh test-deb   install that package in a fresh Debian 12 root and
#                         try it there (root; also part of `test`)
#
# Only the Go module proxy (and Debian's archive, for `test`) is reached.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
B=$ROOT/build
export CGO_ENABLED=0
GOARCH=$(go env GOARCH)

log() { printf '==> %s\n' "$*" >&2; }

# The stage1 images are packed by aci/acibuild/mkstage1, as the tests pack
# theirs: binaries, rootfs and a manifest from the contract's constants.
build_fly() {
	"$B/tmp/mkstage1" --build-id "$BUILD_ID" fly "$B/stage1-images/stage1-fly.aci"
}

build_host_stage1() {
	if ! command -v systemd-nspawn >/dev/null; then
		log "systemd-nspawn not installed: skipping stage1-host.aci (apt-get install systemd-container)"
		return 0
	fi
	"$B/tmp/mkstage1" --build-id "$BUILD_ID" host "$B/stage1-images/stage1-host.aci"
}

build_sample() {
	local d=$B/tmp/sample
	rm -rf "$d" && mkdir -p "$d/rootfs"
	go build -trimpath -ldflags="-s -w" -o "$d/rootfs/hello" ./dist/sample-image
	sed "s/\"amd64\"/\"$GOARCH\"/" dist/sample-image/manifest.json >"$d/manifest.json"
	"$B/tmp/mkaci" --manifest "$d/manifest.json" --rootfs "$d/rootfs" "$B/images/hello.aci"
	# Sign it with a key made for the purpose (kept across builds) and trust
	# that key for example.com/hello in a config directory next to it, so
	# the demo runs a verified image.
	go build -o "$B/tmp/acisign" ./aci/trust/acisign
	if [ ! -s "$B/sample-key/privkey.gpg" ]; then
		"$B/tmp/acisign" --gen-key "$B/sample-key" --name "rkt sample image signer" >/dev/null
	fi
	"$B/tmp/acisign" --key "$B/sample-key/privkey.gpg" --sign "$B/images/hello.aci"
	rm -rf "$B/sample-config"
	"$B/tmp/acisign" --trust "$B/sample-key/pubkey.gpg" --prefix example.com/hello --config "$B/sample-config" >/dev/null
}

build() {
	mkdir -p "$B/bin" "$B/stage1-images" "$B/images" "$B/tmp"
	go build -o "$B/tmp/mkaci" ./aci/acibuild/mkaci
	go build -o "$B/tmp/mkstage1" ./aci/acibuild/mkstage1
	# rkt and the stage1 images carry one build ID (the hash of these
	# sources): rkt runs the fly stage1 of its own build in process
	# (stage0/launch.ExecRun).
	BUILD_ID=$("$B/tmp/mkstage1" build-id)
	log "building rkt (build $BUILD_ID)"
	# rkt links no fetcher (-tags nofetch): a command that needs one
	# (fetch, trust, an image not in the store) is handed over to
	# rkt-fetch, the same CLI with them (stage0/cli/handover.go).
	local ld="-s -w -X github.com/rktng/rkt/common/stage1.BuildID=$BUILD_ID"
	go build -trimpath -tags nofetch -ldflags="$ld" -o "$B/bin/rkt" ./stage0/cmd/rkt
	go build -trimpath -ldflags="$ld" -o "$B/bin/rkt-fetch" ./stage0/cmd/rkt
	# Reads rkt 1.30's store index when migrating it (aci/migrate).
	go build -trimpath -ldflags="-s -w" -o "$B/bin/rkt-ql-dump" ./aci/migrate/rkt-ql-dump
	log "building stage1 images"
	build_fly
	build_host_stage1
	log "building the sample image"
	build_sample
	log "built: $B/bin/rkt (and rkt-fetch), $(cd "$B" && ls stage1-images/*.aci images/*.aci | tr '\n' ' ')"
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "build.sh $1: needs root (pods need mounts and namespaces)" >&2
		exit 1
	fi
}

demo() {
	need_root demo
	# The default stage1 is built from the host's systemd-nspawn and systemd.
	if ! command -v systemd-nspawn >/dev/null; then
		install_pkgs systemd-container || log "could not install systemd-container: the demo uses the fly stage1"
	fi
	build
	local stage1=()
	if [ ! -e "$B/stage1-images/stage1-host.aci" ]; then
		stage1=(--stage1-path="$B/stage1-images/stage1-fly.aci")
	fi
	log "running the sample image in a pod"
	set -x
	"$B/bin/rkt" --dir="$B/demo-data" --local-config="$B/sample-config" run "${stage1[@]}" "$B/images/hello.aci"
}

# Debian packages the tests use: systemd-nspawn and machined for the default
# stage1, busybox for test images with a shell, dbus for machined, gpg for
# keys made by a real gpg, runc for the benchmark peer, bsdutils for script(1),
# iptables for the CNI plugins' masquerade and port forwarding (iproute2's ip
# for the network tests' own namespaces).
TEST_PACKAGES="systemd-container busybox-static dbus gpg runc iproute2 bsdutils iptables"

install_test_deps() {
	install_pkgs $TEST_PACKAGES
}

install_pkgs() {
	local missing=()
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# STATICCHECK is the version of staticcheck the tree is kept clean with; it
# comes from the module proxy like every other Go dependency.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint() {
	log "gofmt"
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './build/*'))
	if [ -n "$unformatted" ]; then
		echo "gofmt would change:" >&2
		echo "$unformatted" >&2
		return 1
	fi
	log "go mod tidy"
	if ! go mod tidy -diff >&2; then
		echo "go.mod/go.sum are not tidy: run go mod tidy" >&2
		return 1
	fi
	# rkt's own binary is the -tags nofetch build of stage0 (see build):
	# both variants are checked.
	log "go vet"
	go vet ./...
	go vet -tags nofetch ./stage0/...
	log "staticcheck"
	GOFLAGS=-mod=mod go run "$STATICCHECK" ./...
	GOFLAGS=-mod=mod go run "$STATICCHECK" -tags nofetch ./stage0/...
}

run_tests() {
	need_root test
	# Root tests fail rather than skip if they somehow run without root
	# (tests/testutil/asroot).
	export RKT_TEST_REQUIRE_ROOT=1
	install_test_deps
	build
	lint
	log "go test (functional tests on the fly stage1)"
	# Functional tests build their own binaries and images from Go; the
	# built tree above is what the README's demo uses.
	go test -count=1 -timeout 40m ./...
	log "fuzz targets, briefly (tests/fuzz/fuzz.sh; FUZZTIME=10m for a real run)"
	bash tests/fuzz/fuzz.sh
	log "go test ./tests (functional tests on the default stage1, stage1-host)"
	RKT_STAGE1=host go test -count=1 -timeout 40m ./tests/...
	test_deb built
	log "functional tests in a systemd, cgroup v2 guest (tests/vm/test-host.sh)"
	bash tests/vm/test-host.sh "$B"
}

# deb builds the Debian package from the built tree (dist/deb/build-deb.sh);
# "deb built" skips the build.
deb() {
	[ "${1:-}" = built ] || build
	log "building the Debian package"
	dist/deb/build-deb.sh "$B" "$B/deb"
}

# test_deb: lintian, then install, upgrade, use and purge in a fresh Debian
# 12 root made by mmdebstrap (dist/deb/test-deb.sh).
test_deb() {
	need_root test-deb
	install_pkgs mmdebstrap lintian systemd-container
	local pkg
	pkg=$(deb "${1:-}" | tail -n 1)
	log "lintian $pkg"
	lintian --fail-on error,warning "$pkg"
	dist/deb/test-deb.sh "$B" "$pkg"
}

bench() {
	need_root bench
	install_test_deps
	# podman is a peer of the benchmark only: not installed by `test`.
	install_pkgs podman curl xz-utils
	build
	bash tests/bench/bench.sh "$B"
}

install() {
	need_root install
	build
	install -D -m 0755 "$B/bin/rkt" /usr/bin/rkt
	install -D -m 0755 "$B/bin/rkt-fetch" /usr/lib/rkt/rkt-fetch
	install -D -m 0755 "$B/bin/rkt-ql-dump" /usr/lib/rkt/rkt-ql-dump
	install -d /usr/lib/rkt/stage1-images
	install -m 0644 "$B"/stage1-images/*.aci /usr/lib/rkt/stage1-images/
	install -D -m 0644 dist/systemd/rkt-gc.service /usr/lib/systemd/system/rkt-gc.service
	install -D -m 0644 dist/systemd/rkt-gc.timer /usr/lib/systemd/system/rkt-gc.timer
	log "installed /usr/bin/rkt and /usr/lib/rkt/stage1-images"
}

case "${1:-build}" in
build) build ;;
demo) demo ;;
test) run_tests ;;
lint) lint ;;
bench) bench ;;
install) install ;;
deb) deb ;;
test-deb) test_deb ;;
test-host)
	need_root test-host
	build
	bash tests/vm/test-host.sh "$B"
	;;
*)
	echo "usage: $0 [build|demo|test|lint|bench|install|deb|test-deb|test-host]" >&2
	exit 2
	;;
esac
