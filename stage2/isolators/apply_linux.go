package isolators

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Apply steps change the calling thread only (capabilities, the
// no-new-privileges bit and seccomp filters are per thread): the caller
// locks its goroutine to the thread and execs from it.

// BeforeCredentials sets oom_score_adj and shrinks the bounding set; it
// needs CAP_SETPCAP, so it runs while the process is still the pod's
// root, before the app's user and groups are taken.
func (c *Confinement) BeforeCredentials() error {
	if c.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*c.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("setting oom_score_adj %d: %w", *c.OOMScoreAdj, err)
		}
	}
	if c.Unrestricted {
		return nil
	}
	keep := CapabilityMask(c.Capabilities)
	for n := 0; n <= capLast(); n++ {
		if keep&(1<<uint(n)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", n, err)
		}
	}
	return nil
}

// AfterCredentials limits the permitted, effective and inheritable sets
// to the bounding set (for root they become it; a non-root user has none
// left after setuid, as under systemd), clears the ambient set, sets
// no-new-privileges and loads the seccomp filter, last so that the filter
// does not apply to the steps before it. As in systemd, a process without
// CAP_SYS_ADMIN can only load a filter with no-new-privileges set, so a
// seccomp filter implies it then.
func (c *Confinement) AfterCredentials() error {
	if !c.Unrestricted {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return fmt.Errorf("reading capabilities: %w", err)
		}
		keep := CapabilityMask(c.Capabilities)
		for i := range data {
			m := uint32(keep >> (32 * uint(i)))
			data[i].Permitted &= m
			data[i].Effective &= m
			data[i].Inheritable &= m
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("setting capabilities: %w", err)
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("clearing ambient capabilities: %w", err)
		}
	}
	nnp := c.NoNewPrivileges
	if c.Seccomp != nil && !hasEffective(capNumbers["CAP_SYS_ADMIN"]) {
		nnp = true
	}
	if nnp {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no-new-privileges: %w", err)
		}
	}
	if c.Seccomp == nil {
		return nil
	}
	prog, err := c.Seccomp.Program()
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("loading seccomp filter: %w", e)
	}
	return nil
}

func hasEffective(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[c/32].Effective&(1<<uint(c%32)) != 0
}

// capLast is the highest capability the kernel knows, read once: the
// bounding-set loop asks for it at every capability.
var capLast = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return 40
})
