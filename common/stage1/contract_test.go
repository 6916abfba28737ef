package stage1

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// full sets every run argument, so that each version's gate shows.
var full = RunArgs{
	Debug: true, Net: []string{"default", "other"}, Interactive: true, PrivateUsers: "0:65536",
	MDSToken: "tok", LocalConfig: "/etc/rkt", Hostname: "h",
	DisableCaps: true, DisablePaths: true, DisableSeccomp: true,
	DNSConfMode: DNSConfMode{Resolv: "host", Hosts: "stage0"}, Mutable: true, IPC: "private",
	UUID: "u",
}

func TestRunArgsOfEachVersion(t *testing.T) {
	base := []string{"--debug", "--net=default,other", "--interactive", "--private-users=0:65536", "--mds-token=tok", "--local-config=/etc/rkt"}
	v2 := []string{"--hostname=h"}
	v3 := []string{"--disable-capabilities-restriction", "--disable-paths", "--disable-seccomp"}
	v4 := []string{"--dns-conf-mode=resolv=host,hosts=stage0"}
	v5 := []string{"--mutable"}
	v6 := []string{"--ipc=private"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return append(out, "u")
	}
	for _, tc := range []struct {
		version int
		want    []string
	}{
		{1, cat(base)},
		{2, cat(base, v2)},
		{3, cat(base, v2, v3)},
		{4, cat(base, v2, v3, v4)},
		{5, cat(base, v2, v3, v4, v5)},
		{6, cat(base, v2, v3, v4, v5, v6)},
	} {
		got := full.Args(tc.version)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("version %d:\n got %q\nwant %q", tc.version, got, tc.want)
			continue
		}
		// What stage0 renders, a stage1 parses back to the same values,
		// less what the version leaves out.
		back, err := ParseRunArgs(got)
		if err != nil {
			t.Errorf("version %d: parsing %q: %v", tc.version, got, err)
			continue
		}
		if again := back.Args(tc.version); !reflect.DeepEqual(again, got) {
			t.Errorf("version %d: round trip gives %q, want %q", tc.version, again, got)
		}
	}
	if got := (RunArgs{UUID: "u"}).Args(InterfaceVersion); !reflect.DeepEqual(got, []string{"--net=default", "u"}) {
		t.Errorf("zero arguments: %q", got)
	}
}

func TestOtherEntrypointArgs(t *testing.T) {
	if got := (GCArgs{Debug: true, LocalConfig: "/l", UUID: "u"}).Args(4); !reflect.DeepEqual(got, []string{"--debug", "u"}) {
		t.Errorf("gc version 4: %q", got)
	}
	ga := GCArgs{Debug: true, LocalConfig: "/l", UUID: "u"}
	if back, err := ParseGCArgs(ga.Args(5)); err != nil || back != ga {
		t.Errorf("gc version 5 round trip: %+v %v", back, err)
	}
	sa := StopArgs{Force: true, UUID: "u"}
	if back, err := ParseStopArgs(sa.Args()); err != nil || back != sa {
		t.Errorf("stop round trip: %+v %v", back, err)
	}
	ea := EnterArgs{PID: 42, AppName: "web", Cmd: []string{"/bin/sh", "-c", "--pid=1"}}
	if back, err := ParseEnterArgs(ea.Args()); err != nil || !reflect.DeepEqual(back, ea) {
		t.Errorf("enter round trip: %+v %v", back, err)
	}
}

func TestBadArgsAreUsageErrors(t *testing.T) {
	for name, parse := range map[string]func([]string) error{
		"run":   func(a []string) error { _, err := ParseRunArgs(a); return err },
		"gc":    func(a []string) error { _, err := ParseGCArgs(a); return err },
		"stop":  func(a []string) error { _, err := ParseStopArgs(a); return err },
		"enter": func(a []string) error { _, err := ParseEnterArgs(a); return err },
	} {
		for _, args := range [][]string{nil, {"--no-such-flag", "u"}, {"u", "v"}} {
			err := parse(args)
			if !errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("%s %q: %v; want an ErrUsage naming the entrypoint", name, args, err)
			}
		}
	}
	for _, bad := range []string{"resolv", "resolv=maybe", "dns=host"} {
		if _, err := ParseDNSConfMode(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("dns-conf-mode %q: %v", bad, err)
		}
	}
}

func TestFailureLine(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := FailureLine(getenv, "nspawn:\n  failed\t here "); got != "rkt run: nspawn: failed here\n" {
		t.Errorf("without %s: %q", EnvCommand, got)
	}
	env[EnvCommand] = "rkt run-prepared"
	if got := FailureLine(getenv, "x"); got != "rkt run-prepared: x\n" {
		t.Errorf("with %s: %q", EnvCommand, got)
	}
}
