package isolators

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/appc/spec/schema/types"
)

func isos(t *testing.T, js string) types.Isolators {
	t.Helper()
	var is types.Isolators
	if err := json.Unmarshal([]byte(js), &is); err != nil {
		t.Fatal(err)
	}
	return is
}

func TestDefaultsAndPrecedence(t *testing.T) {
	r, err := Resolve(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Confinement.Capabilities) != 14 || r.Confinement.Seccomp == nil || r.Confinement.Seccomp.Retain ||
		!slices.Contains(r.Confinement.Seccomp.Syscalls, "mount") || r.Confinement.Seccomp.Errno != "EPERM" {
		t.Errorf("defaults: %+v %+v", r.Confinement, r.Confinement.Seccomp)
	}
	image := isos(t, `[{"name":"resource/memory","value":{"limit":"1G"}},{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}},{"name":"example.com/unknown","value":{}}]`)
	app := isos(t, `[{"name":"resource/memory","value":{"limit":"50M"}},{"name":"resource/cpu","value":{"limit":"200m"}},
		{"name":"os/linux/seccomp-remove-set","value":{"set":["@docker/default-blacklist","chmod"],"errno":"ENOTSUP"}},{"name":"os/linux/no-new-privileges","value":true}]`)
	r, err = Resolve(Merge(image, app), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Limits.MemoryBytes != 50_000_000 || r.Limits.CPUMilli != 200 {
		t.Errorf("limits %+v", r.Limits)
	}
	if !slices.Equal(r.Confinement.Capabilities, []string{"CAP_KILL"}) || !r.Confinement.NoNewPrivileges {
		t.Errorf("confinement %+v", r.Confinement)
	}
	if s := r.Confinement.Seccomp; !slices.Contains(s.Syscalls, "chmod") || !slices.Contains(s.Syscalls, "ptrace") || s.Errno != "ENOTSUP" {
		t.Errorf("seccomp %+v", s)
	}
	if !slices.Equal(r.Unknown, []string{"example.com/unknown"}) {
		t.Errorf("unknown %v", r.Unknown)
	}
	r, err = Resolve(isos(t, `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_NET_RAW"]}}]`), Options{DisableSeccomp: true})
	if err != nil || len(r.Confinement.Capabilities) != 13 || slices.Contains(r.Confinement.Capabilities, "CAP_NET_RAW") || r.Confinement.Seccomp != nil {
		t.Errorf("remove set: %+v, %v", r, err)
	}
	r, _ = Resolve(nil, Options{DisableCapabilities: true})
	if !r.Confinement.Unrestricted {
		t.Error("--insecure-options=capabilities not honoured")
	}
}

func TestErrors(t *testing.T) {
	for js, want := range map[string]error{
		`[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_KILL"]}},{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_KILL"]}}]`: ErrContradiction,
		`[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NOPE"]}}]`:                                                                          ErrInvalid,
		`[{"name":"os/linux/seccomp-retain-set","value":{"set":["nosuchcall"]}}]`:                                                                             ErrInvalid,
		`[{"name":"os/linux/seccomp-retain-set","value":{"set":["@rkt/nope"]}}]`:                                                                              ErrInvalid,
		`[{"name":"os/linux/seccomp-remove-set","value":{"set":["read"],"errno":"ENOPE"}}]`:                                                                   ErrInvalid,
	} {
		if _, err := Resolve(isos(t, js), Options{}); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", js, err, want)
		}
	}
}

func TestGroupsAndProgram(t *testing.T) {
	for _, g := range []string{"@rkt/default-whitelist", "@docker/default-whitelist", "@appc.io/all", "@appc.io/empty", "@rkt/default-blacklist"} {
		calls, err := expandSyscalls([]string{g})
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if white := g != "@rkt/default-blacklist" && g != "@appc.io/empty"; white && (!slices.Contains(calls, "read") || (g != "@appc.io/all" && slices.Contains(calls, "mount"))) {
			t.Errorf("%s: %d calls", g, len(calls))
		}
		for _, retain := range []bool{true, false} {
			if _, err := (&Seccomp{Retain: retain, Syscalls: calls}).Program(); err != nil {
				t.Errorf("%s: %v", g, err)
			}
		}
	}
	prog, err := (&Seccomp{Syscalls: []string{"mount"}, Errno: "EPERM"}).Program()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range prog {
		found = found || (in.Code == 0x06 && in.K == 0x00050001)
	}
	if !found {
		t.Error("errno EPERM is not in the program's returns")
	}
}

func TestCapabilityMask(t *testing.T) {
	if m := CapabilityMask(DefaultCapabilities); m != 0xa80425fb {
		t.Errorf("default mask %#x, want 0xa80425fb (rkt's and docker's default CapBnd)", m)
	}
}
