#!/usr/bin/env bash
# build-deb.sh BUILDDIR OUTDIR: packs what ./build.sh built in BUILDDIR into
# OUTDIR/rkt_<version>_<arch>.deb with dpkg-deb, and prints its path.
#
#   DEB_VERSION     package version (default: rkt's version, revision 1)
#   DEB_MAINTAINER  the Maintainer field
#
# Layout: /usr/bin/rkt; /usr/lib/rkt/rkt-fetch (rkt with the fetchers, which
# rkt hands fetching over to); /usr/lib/rkt/rkt-ql-dump (reads a rkt 1.30
# store when migrating it); /usr/lib/rkt/stage1-images/{stage1-host,stage1-fly}.aci
# (the CNI plugins live inside stage1-host.aci); the units in
# /usr/lib/systemd/system; tmpfiles.d and sysusers.d entries; bash, zsh and
# fish completion; one man page per command (dist/genman); README, copyright,
# changelog in /usr/share/doc/rkt; the signed sample in /usr/share/rkt/examples.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILDDIR OUTDIR" >&2
	exit 2
fi
B=$(cd "$1" && pwd)
out=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
here=$src/dist/deb

for f in bin/rkt bin/rkt-fetch bin/rkt-ql-dump stage1-images/stage1-host.aci stage1-images/stage1-fly.aci images/hello.aci images/hello.aci.asc sample-key/pubkey.gpg; do
	if [ ! -s "$B/$f" ]; then
		echo "build-deb: $B/$f missing (the package needs the default stage1: apt-get install systemd-container, then ./build.sh)" >&2
		exit 1
	fi
done

version=${DEB_VERSION:-$("$B/bin/rkt" version | awk 'NR == 1 { print $3 }')-1}
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-rkt developers <rkt-dev@lists.rktng.org>}
# The systemd the default stage1 was built from is the oldest nspawn the
# package accepts (stage1/boot/nspawnversion.go warns below it).
systemd=$(tar -xOf "$B/stage1-images/stage1-host.aci" manifest |
	sed -n 's/.*"coreos.com\/rkt\/stage1\/systemd-version", *"value": *"\([0-9]*\)".*/\1/p')
if [ -z "$systemd" ]; then
	echo "build-deb: stage1-host.aci has no systemd-version annotation" >&2
	exit 1
fi
# Reproducible: dates and mtimes from the last commit.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}

root=$B/tmp/deb/root
rm -rf "$B/tmp/deb" && mkdir -p "$root/DEBIAN"
inst() { # inst MODE SRC DEST
	install -D -m "$1" "$2" "$root/$3"
}
gz() { # gz FILE: gzip -9n in place
	gzip -9nf "$1"
}

inst 0755 "$B/bin/rkt" usr/bin/rkt
inst 0755 "$B/bin/rkt-fetch" usr/lib/rkt/rkt-fetch
inst 0755 "$B/bin/rkt-ql-dump" usr/lib/rkt/rkt-ql-dump
for s in stage1-host stage1-fly; do
	inst 0644 "$B/stage1-images/$s.aci" "usr/lib/rkt/stage1-images/$s.aci"
done
for u in "$src"/dist/systemd/*; do
	inst 0644 "$u" "usr/lib/systemd/system/$(basename "$u")"
done
inst 0644 "$src/dist/tmpfiles.d/rkt.conf" usr/lib/tmpfiles.d/rkt.conf
inst 0644 "$src/dist/sysusers.d/rkt.conf" usr/lib/sysusers.d/rkt.conf

mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$B/bin/rkt" completion bash >"$root/usr/share/bash-completion/completions/rkt"
"$B/bin/rkt" completion zsh >"$root/usr/share/zsh/vendor-completions/_rkt"
"$B/bin/rkt" completion fish >"$root/usr/share/fish/vendor_completions.d/rkt.fish"

(cd "$src" && go build -o "$B/tmp/genman" ./dist/genman)
"$B/tmp/genman" "$root/usr/share/man/man1"
for m in "$root"/usr/share/man/man1/*.1; do gz "$m"; done

doc=usr/share/doc/rkt
inst 0644 "$src/README.md" "$doc/README.md"
gz "$root/$doc/README.md"
inst 0644 "$here/copyright" "$doc/copyright"
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" \
	-e "s/@DATE@/$(date -R -u -d "@$SOURCE_DATE_EPOCH")/" "$here/changelog.in" >"$root/$doc/changelog.Debian"
gz "$root/$doc/changelog.Debian"
# The sample outside /usr/share/doc, which minimal systems exclude from
# installation (dpkg path-exclude).
ex=usr/share/rkt/examples
inst 0644 "$B/images/hello.aci" "$ex/hello.aci"
inst 0644 "$B/images/hello.aci.asc" "$ex/hello.aci.asc"
inst 0644 "$B/sample-key/pubkey.gpg" "$ex/hello-signer.asc"

inst 0644 "$here/lintian-overrides" usr/share/lintian/overrides/rkt
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINTAINER@/$maintainer/" \
	-e "s/@SIZE@/$size/" -e "s/@SYSTEMD@/$systemd/" "$here/control.in" >"$root/DEBIAN/control"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/rkt_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
