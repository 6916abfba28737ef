#!/usr/bin/env bash
# test-deb.sh BUILDDIR DEB: tries the package the way a user gets it, in a
# fresh Debian 12 root made by mmdebstrap from Debian's archive:
#
# Pods run in a network namespace of the test's (unshare --net).
#
#   1. apt installs an older build of the package (DEB repacked with a lower
#      version) so that its dependencies resolve; the README's demo runs;
#   2. apt upgrades to DEB: the pod and the image survive; rkt version, the
#      demo again, rkt list (also as a non-root member of the "rkt" group),
#      bash completion, man rkt-run, the gc timer enabled;
#   3. apt remove keeps the data; apt purge leaves no file, mount, unit
#      state or data directory of rkt behind.
#
# The root runs under chroot with /proc, /sys and /dev mounted in a private
# mount namespace of this script. The base root (a tarball) and apt's
# downloads are cached in RKT_TEST_DEB_CACHE (default
# /var/cache/rkt-test-deb) and the base is remade once a day.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILDDIR DEB" >&2
	exit 2
fi
deb=$(realpath "$2")
cache=${RKT_TEST_DEB_CACHE:-/var/cache/rkt-test-deb}
base=$cache/bookworm-base.tar
log() { printf '==> test-deb: %s\n' "$*" >&2; }
start=$(date +%s)

if [ -z "${RKT_TEST_DEB_NS:-}" ]; then
	mkdir -p "$cache/archives/partial"
	# One base for everyone on this machine: made under a lock, renamed
	# into place whole.
	(
		flock 9
		if [ ! -s "$base" ] || [ -n "$(find "$base" -mmin +1440)" ]; then
			log "making the Debian 12 base root with mmdebstrap"
			rm -f "$base.tmp.tar"
			mmdebstrap --quiet --variant=apt --include=man-db,bash-completion \
				--skip=cleanup/apt/lists bookworm "$base.tmp.tar" \
				"deb http://deb.debian.org/debian bookworm main" \
				"deb http://deb.debian.org/debian bookworm-updates main" \
				"deb http://deb.debian.org/debian-security bookworm-security main"
			mv "$base.tmp.tar" "$base"
		fi
	) 9>"$cache/lock"
	work=$(mktemp -d /var/tmp/rkt-test-deb.XXXXXX)
	rc=0
	# One run at a time on a machine: apt's download cache is shared.
	RKT_TEST_DEB_NS=$work flock "$cache/run.lock" unshare --mount --propagation private -- "$0" "$@" || rc=$?
	# The namespace and its mounts are gone with the process; remove the
	# root only if nothing is mounted below it, and never cross into
	# another file system.
	if grep -qF " $work/" /proc/self/mountinfo; then
		log "mounts left under $work: not removing it"
		exit 1
	fi
	rm -rf --one-file-system "$work"
	log "done in $(($(date +%s) - start)) s (status $rc)"
	exit $rc
fi

# In the private mount namespace.
work=$RKT_TEST_DEB_NS
root=$work/root
mkdir -p "$root"
tar -C "$root" -xf "$base"
# The root a mount point of its own, as / is on a host (stage1 makes the
# pod's / a slave of it).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# The older build: the same files under a lower version, enough to run the
# maintainer scripts' upgrade paths.
version=$(dpkg-deb -f "$deb" Version)
old=${version%-*}~old-1
dpkg-deb -R "$deb" "$work/old"
sed -i "s/^Version: .*/Version: $old/" "$work/old/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip --build "$work/old" "$root/root/rkt_old.deb" >/dev/null
cp "$deb" "$root/root/rkt_new.deb"

log "installing $old, upgrading to $version, purging (in $root)"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive OLD="$old" NEW="$version" \
	chroot "$root" /bin/bash -euo pipefail -c "$(sed -n '/^# --- in the root ---$/,$p' "$0")"
exit 0

# --- in the root ---
step() { printf '==> test-deb (root): %s\n' "$*" >&2; }
fail() { printf 'test-deb: FAIL: %s\n' "$*" >&2; exit 1; }
apt_q() { apt-get -o Dpkg::Use-Pty=0 -qq "$@" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get $*"; }; }
ex=/usr/share/rkt/examples
# has PATTERN CMD...: CMD succeeds and prints a line matching PATTERN (the
# output is read whole: grep -q in a pipe would SIGPIPE the command).
has() {
	local pat=$1 out
	shift
	out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
	grep -q -- "$pat" <<<"$out" || { printf '%s\n' "$out" >&2; return 1; }
}

demo() { # the README's demo: trust the sample's signer, run the sample
	rkt trust --prefix=example.com/hello --skip-fingerprint-review "$ex/hello-signer.asc" >/tmp/trust.out 2>&1 || { cat /tmp/trust.out >&2; fail "rkt trust of the sample's signer"; }
	# In a network namespace of its own: the default network's addresses,
	# veth and masquerade rules stay off the test machine's.
	unshare --net rkt run "$ex/hello.aci" >/tmp/demo.out 2>&1 || { cat /tmp/demo.out >&2; fail "rkt run of the sample image"; }
	grep -q 'Hello from rkt!' /tmp/demo.out || { cat /tmp/demo.out >&2; fail "the sample's greeting is missing"; }
}

step "apt-get install ./rkt_old.deb ($OLD)"
apt_q update
apt_q install -y /root/rkt_old.deb
[ "$(dpkg-query -W -f='${Status} ${Version}' rkt)" = "install ok installed $OLD" ] || fail "rkt $OLD not installed"
demo

step "apt-get install ./rkt_new.deb ($NEW, an upgrade)"
apt_q install -y /root/rkt_new.deb
[ "$(dpkg-query -W -f='${Status} ${Version}' rkt)" = "install ok installed $NEW" ] || fail "rkt $NEW not installed"
[ -z "$(dpkg --audit)" ] || fail "dpkg --audit: $(dpkg --audit)"

step "rkt version"
has '^rkt Version: ' rkt version || fail "rkt version"

step "the data directory, groups and units"
getent group rkt >/dev/null || fail "no rkt group"
getent group rkt-admin >/dev/null || fail "no rkt-admin group"
[ "$(stat -c '%a %U %G' /var/lib/rkt)" = "2750 root rkt" ] || fail "/var/lib/rkt is $(stat -c '%a %U %G' /var/lib/rkt)"
[ "$(stat -c '%a %U %G' /var/lib/rkt/pods/run)" = "2750 root rkt" ] || fail "/var/lib/rkt/pods/run is $(stat -c '%a %U %G' /var/lib/rkt/pods/run)"
[ -L /etc/systemd/system/timers.target.wants/rkt-gc.timer ] || fail "rkt-gc.timer not enabled"
for u in rkt-gc.service rkt-gc.timer rkt-metadata.service rkt-metadata.socket; do
	[ -f "/usr/lib/systemd/system/$u" ] || fail "$u missing"
done
[ -f /usr/lib/rkt/stage1-images/stage1-host.aci ] && [ -f /usr/lib/rkt/stage1-images/stage1-fly.aci ] || fail "stage1 images missing"

step "the demo after the upgrade, rkt list"
demo
pods=$(rkt list --no-legend | wc -l)
[ "$pods" -ge 2 ] || { rkt list >&2; fail "rkt list shows $pods pods, want the one from before the upgrade and the new one"; }
has exited rkt list --no-legend || fail "no exited pod in rkt list"

step "rkt list, status and image list as a non-root member of the rkt group"
gid=$(getent group rkt | cut -d: -f3)
uuid=$(rkt list --full --no-legend | awk 'NR == 1 { print $1 }')
as_user() { HOME=/tmp setpriv --reuid=4242 --regid=4242 --groups="$gid" -- "$@"; }
[ "$(as_user rkt list --no-legend | wc -l)" = "$pods" ] || fail "non-root rkt list: $(as_user rkt list 2>&1)"
has '^state=exited' as_user rkt status "$uuid" || fail "non-root rkt status"
has example.com/hello as_user rkt image list --no-legend || fail "non-root rkt image list"

step "bash completion"
out=$(bash -c 'source /usr/share/bash-completion/bash_completion
	_completion_loader rkt
	complete -p rkt
	COMP_WORDS=(rkt ima); COMP_CWORD=1; COMP_LINE="rkt ima"; COMP_POINT=${#COMP_LINE}
	__start_rkt rkt ima rkt
	printf "%s\n" "${COMPREPLY[@]}"' 2>/dev/null)
grep -q '__start_rkt rkt' <<<"$out" || fail "bash does not load rkt's completion: $out"
grep -qx 'image' <<<"$out" || fail "completing 'rkt ima' does not offer image: $out"

step "man rkt-run"
has '--port' env MANPAGER=cat MANWIDTH=80 man rkt-run || fail "man rkt-run lacks --port"
has 'rkt-image(1)' env MANPAGER=cat man rkt || fail "man rkt lacks its commands"

step "a killed pod's mounts (shared, as rkt 1.30's fly left them)"
# Shared with /dev here (this root's /dev, in the test's own mount
# namespace): an unmount that is not made private first would take
# /dev/pts and /dev/shm away too.
leftover=/var/lib/rkt/pods/exited-garbage/00000000-0000-4000-8000-000000000000/stage1/rootfs/dev
mkdir -p "$leftover"
mount --make-rshared /dev
mount --rbind /dev "$leftover"
mountpoint -q "$leftover/pts" || fail "could not make the leftover mounts"

step "apt-get remove keeps the data"
apt_q remove -y rkt
[ ! -e /usr/bin/rkt ] || fail "/usr/bin/rkt left after remove"
[ -d /var/lib/rkt/pods ] && [ -n "$(ls /var/lib/rkt/pods/*/)" ] || fail "pods gone after remove"
[ -d /etc/rkt/trustedkeys ] || fail "trust store gone after remove"

step "apt-get purge leaves nothing"
apt_q purge -y rkt
if dpkg-query -W rkt >/dev/null 2>&1; then fail "rkt still known to dpkg: $(dpkg -l rkt | tail -1)"; fi
for p in /var/lib/rkt /etc/rkt /run/rkt; do
	[ ! -e "$p" ] || fail "$p left after purge"
done
mnts=$(findmnt -rn -o TARGET)
if grep rkt <<<"$mnts"; then fail "mounts left after purge (above)"; fi
mountpoint -q /dev/pts || fail "purge unmounted /dev/pts: an unmount propagated"
# (/var/cache/man holds the pages this test's own man calls formatted:
# man-db's cache, not the package's.)
left=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /root -o -path /var/cache/man \) -prune -o -name '*rkt*' -print)
[ -z "$left" ] || fail "files left after purge: $left"
step "ok"
