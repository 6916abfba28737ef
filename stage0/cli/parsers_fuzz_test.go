package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

// Fuzz targets for the parsers of command-line values that end up in pod
// manifests. A value a parser accepts must serialize: the pod manifest is
// written with it.

func FuzzVolume(f *testing.F) {
	for _, s := range []string{
		"data,kind=host,source=/tmp", "data,kind=host,source=/tmp,readOnly=true,recursive=false",
		"scratch,kind=empty,mode=0755,uid=1,gid=2", "x,kind=empty", "a,kind=host", ",,=,",
		"data,kind=host,source=/tmp,readOnly=maybe", "data%2C,kind=empty",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := parseVolumes([]string{s})
		if err != nil {
			return
		}
		for _, v := range vs {
			if v.Name.Empty() {
				t.Fatalf("--volume %q: accepted with no name", s)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatalf("--volume %q: accepted but does not serialize: %v", s, err)
			}
		}
	})
}

func FuzzMount(f *testing.F) {
	for _, s := range []string{
		"volume=data,target=/data", "target=/x,volume=v", "volume=data", "volume=Bad,target=/x",
		"volume=data,target=/data,extra=1", "volume=,target=", ",", "volume=a=b,target=/c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMounts([]string{s})
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Volume.Empty() || m.Path == "" {
				t.Fatalf("--mount %q: accepted as %+v", s, m)
			}
			if _, err := json.Marshal(m); err != nil {
				t.Fatalf("--mount %q: accepted but does not serialize: %v", s, err)
			}
		}
	})
}

func FuzzPort(f *testing.F) {
	for _, s := range []string{
		"http:8080", "http:127.0.0.1:8080", "dns:[::1]:53", "http:0", "http:65536", "Bad:80",
		"http::80", "http:[::1]:", ":80", "http:1.2.3.4:5:6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parsePorts([]string{s})
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.HostPort < 1 || p.HostPort > 65535 || p.Name.Empty() {
				t.Fatalf("--port %q: accepted as %+v", s, p)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("--port %q: accepted but does not serialize: %v", s, err)
			}
		}
	})
}

func FuzzSetEnv(f *testing.F) {
	for _, s := range []string{"A=1", "A=", "PATH=/bin:/usr/bin", "=x", "A", "A B=1", "A=b=c", "A=\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, err := parseEnv([]string{s, s}, "--set-env")
		if err != nil {
			return
		}
		if len(env) != 1 || env[0].Name == "" || !strings.HasPrefix(s, env[0].Name+"=") {
			t.Fatalf("--set-env %q twice: parsed as %+v", s, env)
		}
		if v, ok := env.Get(env[0].Name); !ok || s != env[0].Name+"="+v {
			t.Fatalf("--set-env %q: value %q", s, v)
		}
	})
}

func FuzzIsolators(f *testing.F) {
	f.Add("50M", "500m", "1024", "-100", "net_admin,CAP_NET_RAW", "")
	f.Add("", "", "", "", "", "mode=retain,errno=EPERM,@rkt/default-whitelist,mount")
	f.Add("1G", "1", "2", "1000", "", "mode=remove,reboot")
	f.Add("-1", "x", "0", "1001", ",", "mode=other,read")
	f.Fuzz(func(t *testing.T, memory, cpu, shares, oom, caps, seccomp string) {
		fl := appFlags{Memory: memory, CPU: cpu, CPUShares: shares, OOMScoreAdj: oom, Seccomp: seccomp}
		if strings.HasPrefix(caps, "-") {
			fl.CapsRemove = caps[1:]
		} else {
			fl.CapsRetain = caps
		}
		isos, err := isolatorsFromFlags(fl)
		if err != nil {
			return
		}
		b, err := json.Marshal(isos)
		if err != nil {
			t.Fatalf("isolators %+v: accepted but do not serialize: %v", fl, err)
		}
		var back types.Isolators
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("isolators %+v: serialized as %s, which does not parse back: %v", fl, b, err)
		}
	})
}
