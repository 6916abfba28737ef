#!/bin/bash
# mkrootfs.sh OUTDIR BINDIR: assembles the stage1-host image directory.
#
# OUTDIR/manifest is the image manifest (name coreos.com/rkt/stage1-host, the
# entrypoint annotations) and OUTDIR/rootfs the pod's "machine": the host's
# systemd, journald, systemctl and journalctl with the libraries they load,
# the static units of stage1/units/ and our Go binaries from BINDIR
# (stage1-host and stage2, built with CGO_ENABLED=0). The host's systemd is
# used on purpose: the pod then runs the systemd the host was tested with,
# and nothing is downloaded.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 OUTDIR BINDIR" >&2
	exit 2
fi
out=$1
bindir=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$out/rootfs

for b in stage1-host stage2; do
	[ -x "$bindir/$b" ] || { echo "mkrootfs: $bindir/$b missing (go build it first)" >&2; exit 1; }
done

find_bin() { # first existing path among the arguments
	for p in "$@"; do
		if [ -x "$p" ]; then echo "$p"; return 0; fi
	done
	echo "mkrootfs: none of $* exists (apt-get install systemd)" >&2
	return 1
}

rm -rf "$root"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,var/log/journal,run,tmp,proc,sys,dev,opt/stage2,rkt/status,rkt/env,rkt/stage2}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
chmod 1777 "$root/tmp"

# copy_with_libs SRC DEST: SRC to DEST (a path in the rootfs) and every
# library ldd lists for it at the same path as on the host.
copy_with_libs() {
	local src=$1 dest=$2
	mkdir -p "$(dirname "$root/$dest")"
	cp -L "$src" "$root/$dest"
	ldd "$src" | awk '/=>/ { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
		[ -n "$lib" ] && [ -e "$lib" ] || continue
		if [ ! -e "$root/$lib" ]; then
			mkdir -p "$(dirname "$root/$lib")"
			cp -L "$lib" "$root/$lib"
		fi
	done
}

systemd=$(find_bin /usr/lib/systemd/systemd /lib/systemd/systemd)
copy_with_libs "$systemd" usr/lib/systemd/systemd
for b in systemd-journald systemd-shutdown; do
	copy_with_libs "$(dirname "$systemd")/$b" "usr/lib/systemd/$b"
done
copy_with_libs "$(find_bin /usr/bin/systemctl /bin/systemctl)" usr/bin/systemctl
copy_with_libs "$(find_bin /usr/bin/journalctl /bin/journalctl)" usr/bin/journalctl
# Without a cache the loader still finds libraries through its default
# paths, but a cache saves a few stats per exec on every unit start.
if command -v ldconfig >/dev/null; then
	mkdir -p "$root/etc/ld.so.conf.d"
	ldconfig -r "$root" 2>/dev/null || true
fi

# The units: static ones here, the per-pod ones are written by the run
# entrypoint into etc/systemd/system.
mkdir -p "$root/usr/lib/systemd/system"
cp "$here"/units/*.target "$here"/units/*.service "$here"/units/*.socket "$root/usr/lib/systemd/system/"
# supervisor-ready.service is wanted by whatever default.target the pod's
# units define (.wants directories merge across unit paths).
mkdir -p "$root/usr/lib/systemd/system/default.target.wants"
ln -s ../supervisor-ready.service "$root/usr/lib/systemd/system/default.target.wants/supervisor-ready.service"
mkdir -p "$root/etc/systemd"
cp "$here/units/journald.conf" "$root/etc/systemd/journald.conf"
cp "$here/units/system.conf" "$root/etc/systemd/system.conf"

cp -L /usr/lib/os-release "$root/usr/lib/os-release"
ln -s ../usr/lib/os-release "$root/etc/os-release"
: >"$root/etc/machine-id"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nsystemd-journal:x:101:\nnogroup:x:65534:\n' >"$root/etc/group"
touch "$root/etc/fstab"

mkdir -p "$root/usr/lib/rkt"
install -m 0755 "$bindir/stage1-host" "$root/usr/lib/rkt/stage1-host"
install -m 0755 "$bindir/stage2" "$root/usr/lib/rkt/stage2"
# The entrypoints: one binary, dispatched on the name it is run as.
for e in init enter gc stop; do
	ln -s usr/lib/rkt/stage1-host "$root/$e"
done

# The CNI plugins of stage1/cni-plugins.txt, built from the Go module proxy
# at the pinned version (the go command checks them against the checksum
# database), as rkt shipped them in its stage1: pods' networks are attached
# with these.
read -r cni_module cni_version < <(grep -v '^#' "$here/cni-plugins.txt" | head -n1)
plugdir=$root/usr/lib/rkt/plugins/net
mkdir -p "$plugdir"
moddir=$(GOFLAGS=-mod=mod go mod download -json "$cni_module@$cni_version" | awk -F'"' '$2 == "Dir" { print $4 }')
[ -d "$moddir" ] || { echo "mkrootfs: could not download $cni_module@$cni_version" >&2; exit 1; }
pkgs=()
while read -r p; do pkgs+=("./plugins/$p"); done < <(grep -v '^#' "$here/cni-plugins.txt" | tail -n +2)
(cd "$moddir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$plugdir/" "${pkgs[@]}")

version=$("$systemd" --version | awk 'NR==1 { print $2 }')
arch=${GOARCH:-$(go env GOARCH 2>/dev/null || echo amd64)}
cat >"$out/manifest" <<EOF
{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "coreos.com/rkt/stage1-host",
  "labels": [
    {"name": "version", "value": "${STAGE1_VERSION:-0.1.0}"},
    {"name": "arch", "value": "$arch"},
    {"name": "os", "value": "linux"}
  ],
  "annotations": [
    {"name": "coreos.com/rkt/stage1/run", "value": "/init"},
    {"name": "coreos.com/rkt/stage1/enter", "value": "/enter"},
    {"name": "coreos.com/rkt/stage1/gc", "value": "/gc"},
    {"name": "coreos.com/rkt/stage1/stop", "value": "/stop"},
    {"name": "coreos.com/rkt/stage1/interface-version", "value": "6"},
    {"name": "coreos.com/rkt/stage1/systemd-version", "value": "$version"}
  ]
}
EOF
