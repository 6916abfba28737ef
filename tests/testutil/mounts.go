package testutil

import (
	"path/filepath"
	"sort"
	"syscall"

	"github.com/rktng/rkt/common/mountinfo"
)

// Mount is one line of /proc/self/mountinfo, reduced to what tests check.
type Mount struct {
	Point  string // mount point
	FSType string
	Source string
}

// Mounts returns the mounts at or below dir in the test process's mount
// namespace (the host's: rkt mounts pod rootfs there).
func Mounts(dir string) []Mount {
	infos, err := mountinfo.Read()
	if err != nil {
		return nil
	}
	var out []Mount
	for _, in := range mountinfo.Under(infos, filepath.Clean(dir)) {
		out = append(out, Mount{Point: in.MountPoint, FSType: in.FSType, Source: in.Source})
	}
	return out
}

// MountsUnder returns the mount points at or below dir.
func MountsUnder(dir string) []string {
	var out []string
	for _, m := range Mounts(dir) {
		out = append(out, m.Point)
	}
	return out
}

// ForceUnmountUnder detaches every mount at or below dir, deepest first, so
// that a test that found a leak can still remove its directories.
func ForceUnmountUnder(dir string) {
	ms := MountsUnder(dir)
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	// Private first: a detach under a shared mount propagates to its peers.
	for i := len(ms) - 1; i >= 0; i-- {
		syscall.Mount("", ms[i], "", syscall.MS_REC|syscall.MS_PRIVATE, "")
	}
	for _, m := range ms {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}
