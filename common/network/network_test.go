package network

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, []string{"default"}},
		{[]string{"default"}, []string{"default"}},
		{[]string{"a,b:IP=1.2.3.4;X=y", "c"}, []string{"a", "b:IP=1.2.3.4;X=y", "c"}},
		{[]string{"host"}, []string{"host"}},
		{[]string{"none"}, []string{"none"}},
		{[]string{"all"}, []string{"all"}},
	} {
		l, err := ParseList(tc.in)
		if err != nil || !reflect.DeepEqual(l.Strings(), tc.want) {
			t.Errorf("ParseList(%q) = %q, %v; want %q", tc.in, l.Strings(), err, tc.want)
		}
	}
	for _, bad := range [][]string{{"host,default"}, {"none", "a"}, {"a,a"}, {""}, {"a,"}, {"host:X=1"}, {"all:X=1"},
		{"a:noequals"}, {"a:X=1:2"}, {"a:X=1\nY=2"}, {"a\x01"}} {
		if l, err := ParseList(bad); !errors.Is(err, ErrBadNetList) {
			t.Errorf("ParseList(%q) = %q, %v; want ErrBadNetList", bad, l.Strings(), err)
		}
	}
}

func TestLoadAndSelect(t *testing.T) {
	sys, local := t.TempDir(), t.TempDir()
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(sys, "10-b.conf", `{"name":"b","type":"bridge"}`)
	write(sys, "20-a.conf", `{"name":"a","type":"ptp"}`)
	write(local, "20-a.conf", `{"name":"a","type":"macvlan"}`)
	write(local, "30-a.conf", `{"name":"a","type":"ignored: first file wins in a directory"}`)
	write(local, "50-l.conflist", `{"name":"l","plugins":[{"type":"bridge"}]}`)
	write(local, "README", `not a network`)
	confs, err := LoadConfs([]string{sys, local, filepath.Join(local, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if confs["a"].Type != "macvlan" || confs["b"].Type != "bridge" || confs["l"].Type != "" || confs[Default].Type != "ptp" {
		t.Errorf("loaded %+v", confs)
	}
	l, _ := ParseList([]string{"l,default,a:K=V,b"})
	sel, err := Select(confs, l)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sel {
		got = append(got, s.Name+"="+s.Args)
	}
	if want := []string{"b=", "a=K=V", "l=", "default="}; !reflect.DeepEqual(got, want) {
		t.Errorf("selected %q, want %q (lexical order of files)", got, want)
	}
	l, _ = ParseList([]string{"default,nosuch"})
	if _, err := Select(confs, l); !errors.Is(err, ErrUnknownNetwork) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown network: %v", err)
	}
	l, _ = ParseList([]string{"all"})
	if sel, err := Select(confs, l); err != nil || len(sel) != len(confs) {
		t.Errorf("all: %d of %d, %v", len(sel), len(confs), err)
	}
	write(local, "60-bad.conf", `{"name":"x\n"}`)
	if _, err := LoadConfs([]string{local}); !errors.Is(err, ErrBadConf) {
		t.Errorf("bad conf: %v", err)
	}
}

func TestInfoRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadInfo(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing net-info.json: %v", err)
	}
	in := []Info{{NetName: "default", NetConf: "net/99-default.conf", IfName: "eth0", IP: []byte{172, 16, 28, 5}, Mask: []byte{255, 255, 255, 0}}}
	if err := SaveInfo(dir, in); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, InfoFile))
	if !strings.Contains(string(b), `"ip":"172.16.28.5"`) || !strings.Contains(string(b), `"mask":"255.255.255.0"`) || !strings.Contains(string(b), `"netConf":"net/99-default.conf"`) {
		t.Errorf("net-info.json: %s", b)
	}
	out, err := LoadInfo(dir)
	if err != nil || len(out) != 1 || out[0].IP.String() != "172.16.28.5" {
		t.Errorf("LoadInfo: %+v, %v", out, err)
	}
}
