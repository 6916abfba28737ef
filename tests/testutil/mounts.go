package testutil

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
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
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	dir = filepath.Clean(dir)
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, Mount{Point: mp, FSType: g[0], Source: unescapeMountinfo(g[1])})
		}
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

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ForceUnmountUnder detaches every mount at or below dir, deepest first, so
// that a test that found a leak can still remove its directories.
func ForceUnmountUnder(dir string) {
	ms := MountsUnder(dir)
	sort.Slice(ms, func(i, j int) bool { return len(ms[i]) > len(ms[j]) })
	for _, m := range ms {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
}
