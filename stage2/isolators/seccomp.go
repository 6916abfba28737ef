package isolators

import (
	"fmt"
	"sort"
	"strings"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// blacklist is what rkt's and docker's default profiles refuse: syscalls
// that reach the kernel's global state (modules, clocks, mounts, keyrings,
// other processes' memory) rather than the app's own.
var blacklist = []string{
	"_sysctl", "acct", "add_key", "adjtimex", "bpf", "clock_adjtime", "clock_settime", "create_module",
	"delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms",
	"get_mempolicy", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "mbind", "mount", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "personality", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy",
	"setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "umount", "umount2", "unshare", "uselib",
	"userfaultfd", "ustat", "vm86", "vm86old",
}

// groups are the named syscall sets appc and rkt accept in seccomp
// isolators. The whitelists are every syscall of the architecture but the
// blacklist, which is what a whitelist built from docker's profile
// amounts to on one architecture, without a second list to keep in sync.
func groups() map[string][]string {
	all := allSyscalls()
	black := map[string]bool{}
	for _, s := range blacklist {
		black[s] = true
	}
	var white []string
	for _, s := range all {
		if !black[s] {
			white = append(white, s)
		}
	}
	return map[string][]string{
		"@rkt/default-whitelist":    white,
		"@docker/default-whitelist": white,
		"@rkt/default-blacklist":    blacklist,
		"@docker/default-blacklist": blacklist,
		"@appc.io/all":              all,
		"@appc.io/empty":            {},
	}
}

func allSyscalls() []string {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(info.SyscallNames))
	for n := range info.SyscallNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// expandSyscalls replaces group names by their members, keeps only
// syscalls this architecture has (a blacklist names some that exist only
// elsewhere) and refuses unknown names.
func expandSyscalls(entries []string) ([]string, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	gs := groups()
	seen := map[string]bool{}
	out := []string{}
	for _, e := range entries {
		if strings.HasPrefix(e, "@") {
			members, ok := gs[e]
			if !ok {
				return nil, fmt.Errorf("unknown syscall group %q: %w", e, ErrInvalid)
			}
			for _, m := range members {
				if _, ok := info.SyscallNames[m]; ok && !seen[m] {
					seen[m] = true
					out = append(out, m)
				}
			}
			continue
		}
		if _, ok := info.SyscallNames[e]; !ok {
			return nil, fmt.Errorf("unknown syscall %q: %w", e, ErrInvalid)
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ErrnoNumber is the number of an errno name such as "EPERM".
func ErrnoNumber(name string) (unix.Errno, error) {
	for i := unix.Errno(1); i < 4096; i++ {
		if unix.ErrnoName(i) == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q: %w", name, ErrInvalid)
}

// Program assembles s into a BPF program for seccomp(2). Filtered
// syscalls return Errno, or kill the whole process (SIGSYS) without one.
func (s *Seccomp) Program() ([]unix.SockFilter, error) {
	deny := seccomp.ActionKillProcess
	denyVal := uint32(seccomp.ActionKillProcess)
	if s.Errno != "" {
		n, err := ErrnoNumber(s.Errno)
		if err != nil {
			return nil, err
		}
		deny = seccomp.ActionErrno
		denyVal = uint32(seccomp.ActionErrno) | uint32(n)&0xffff
	}
	p := seccomp.Policy{DefaultAction: seccomp.ActionAllow}
	if s.Retain {
		p.DefaultAction = deny
		p.Syscalls = []seccomp.SyscallGroup{{Names: s.Syscalls, Action: seccomp.ActionAllow}}
	} else {
		p.Syscalls = []seccomp.SyscallGroup{{Names: s.Syscalls, Action: deny}}
	}
	if len(s.Syscalls) == 0 {
		// An empty group does not assemble; the policy is its default.
		p.Syscalls = []seccomp.SyscallGroup{{Names: []string{"restart_syscall"}, Action: p.DefaultAction}}
	}
	insns, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assembling seccomp filter: %w", err)
	}
	// The library's errno action carries no number (the syscall would
	// "succeed" with 0): put the errno in every such return.
	for i, in := range insns {
		if r, ok := in.(bpf.RetConstant); ok && r.Val == uint32(seccomp.ActionErrno) {
			insns[i] = bpf.RetConstant{Val: denyVal}
		}
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("assembling seccomp filter: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
