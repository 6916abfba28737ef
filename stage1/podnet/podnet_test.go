package podnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/network"
	"github.com/rktng/rkt/stage1/podnet/podnettest"
	"github.com/rktng/rkt/tests/testutil/asroot"
)

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

// plugins builds the CNI plugins of stage1/cni-plugins.txt once, as
// the stage1 packer (aci/acibuild/mkstage1) does.
func plugins(t *testing.T) string {
	t.Helper()
	asroot.Require(t, "network namespaces, veths and iptables")
	for _, tool := range []string{"iptables", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install iptables util-linux iproute2)", tool)
		}
	}
	pluginsOnce.Do(func() { pluginsDir, pluginsErr = buildPlugins() })
	if pluginsErr != nil {
		t.Fatal(pluginsErr)
	}
	return pluginsDir
}

func buildPlugins() (string, error) {
	f, err := os.Open("../cni-plugins.txt")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	mod := strings.Fields(lines[0])
	out, err := exec.Command("go", "mod", "download", "-json", mod[0]+"@"+mod[1]).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", lines[0], err)
	}
	var dir string
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == `"Dir"` {
			dir = strings.Trim(strings.TrimSpace(v), `",`)
		}
	}
	bin, err := os.MkdirTemp("", "rkt-cni-plugins-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-trimpath", "-o", bin + "/"}
	for _, p := range lines[1:] {
		args = append(args, "./plugins/"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the CNI plugins: %v\n%s", err, b)
	}
	return bin, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginsDir != "" {
		os.RemoveAll(pluginsDir)
	}
	os.Exit(code)
}

func selectNets(t *testing.T, dirs []string, nets ...string) []network.Selected {
	t.Helper()
	l, err := network.ParseList(nets)
	if err != nil {
		t.Fatal(err)
	}
	confs, err := network.LoadConfs(dirs)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := network.Select(confs, l)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func newUUID(t *testing.T, i int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", os.Getpid(), i)
}

// hostState is what a pod may leave on the host, filtered to what
// mentions the pod: its container ID (iptables comments, IPAM files), its
// IP (routes, IPAM) or its host-side veth.
//
// Pods of other tests share the default network's subnet: an address one
// of ids released may be another pod's already, and is then left out.
func hostState(t *testing.T, ids, ips, links []string) []string {
	t.Helper()
	keys := append([]string{}, ids...)
	for _, ip := range ips {
		if !podnettest.ReservedByOther(ip, ids) {
			keys = append(keys, ip)
		}
	}
	out, err := podnettest.HostTraces(append(keys, links...))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDefaultNetworkSetupTeardown(t *testing.T) {
	bin := plugins(t)
	ctx := context.Background()
	podDir := t.TempDir()
	uuid := newUUID(t, 0)
	cfg := Config{PodDir: podDir, UUID: uuid, Nets: selectNets(t, nil, "default"), PluginDirs: []string{bin},
		Ports: []PortMapping{{HostPort: 18999, ContainerPort: 80, Protocol: "tcp"}}}
	res, err := Setup(ctx, cfg)
	if err != nil {
		Teardown(ctx, podDir, uuid, cfg.PluginDirs)
		t.Fatal(err)
	}
	ip := res.PodIP()
	if ip == nil || !strings.HasPrefix(ip.String(), "172.16.28.") || res.HostIP() == nil {
		t.Errorf("pod IP %v, host IP %v: want both in 172.16.28.0/24", ip, res.HostIP())
	}
	infos, err := network.LoadInfo(podDir)
	if err != nil || len(infos) != 1 || infos[0].NetName != "default" || infos[0].IfName != "eth0" ||
		infos[0].NetConf != "net/99-default.conf" || infos[0].Mask.String() != "255.255.255.0" || !strings.HasSuffix(infos[0].PluginPath, "/ptp") {
		t.Errorf("net-info.json: %+v, %v", infos, err)
	}
	b, err := exec.Command("nsenter", "--net="+res.NetNS, "ip", "-4", "-o", "addr").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "eth0") || !strings.Contains(string(b), ip.String()+"/24") || !strings.Contains(string(b), " lo ") {
		t.Errorf("addresses in the pod's netns: %v\n%s", err, b)
	}
	if st := hostState(t, []string{uuid}, []string{ip.String() + " "}, nil); len(st) == 0 {
		t.Errorf("no trace of the pod on the host: the filter is broken")
	}
	if err := Teardown(ctx, podDir, uuid, cfg.PluginDirs); err != nil {
		t.Fatal(err)
	}
	if st := hostState(t, []string{uuid}, []string{ip.String() + " "}, nil); len(st) != 0 {
		t.Errorf("left on the host after teardown:\n%s", strings.Join(st, "\n"))
	}
	if _, err := os.Stat(res.NetNS); !os.IsNotExist(err) {
		t.Errorf("netns file still there: %v", err)
	}
	if err := Teardown(ctx, podDir, uuid, cfg.PluginDirs); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

// TestTeardownWithoutPodInterface: the pod's side is gone by gc, because
// its namespace went with the mount namespace it was bound in (rkt run
// under unshare -m, a unit with PrivateMounts=) or a DEL failed after
// deleting the interface; teardown still leaves nothing of the pod on the
// host, IP masquerade chain and forwarded port included.
func TestTeardownWithoutPodInterface(t *testing.T) {
	bin := plugins(t)
	for i, tc := range []struct {
		name string
		lose func(netns string) error
	}{
		{"namespace unbound", func(netns string) error { return unix.Unmount(netns, unix.MNT_DETACH) }},
		{"interface deleted", func(netns string) error {
			if b, err := exec.Command("nsenter", "--net="+netns, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, b)
			}
			return nil
		}},
		{"namespace unbound, no CNI cache", func(netns string) error {
			if err := os.RemoveAll(filepath.Join(filepath.Dir(netns), network.PodNetDir, "cache")); err != nil {
				return err
			}
			return unix.Unmount(netns, unix.MNT_DETACH)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			podDir := t.TempDir()
			uuid := newUUID(t, 100+i)
			// rkt 1.30's default network: ptp's masquerade per pod.
			conf := `{"cniVersion":"0.4.0","name":"default","type":"ptp","ipMasq":true,
"ipam":{"type":"host-local","subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`
			nets := []network.Selected{{Conf: network.Conf{Name: "default", Type: "ptp", File: "99-default.conf", Bytes: []byte(conf)}}}
			cfg := Config{PodDir: podDir, UUID: uuid, Nets: nets, PluginDirs: []string{bin},
				Ports: []PortMapping{{HostPort: 18990 + i, ContainerPort: 80, Protocol: "tcp"}}}
			res, err := Setup(ctx, cfg)
			// Idempotent: after the test's own, a no-op.
			t.Cleanup(func() { Teardown(ctx, podDir, uuid, cfg.PluginDirs) })
			if err != nil {
				t.Fatal(err)
			}
			keys, ips := []string{uuid}, []string{res.PodIP().String() + " "}
			if st := hostState(t, keys, ips, nil); !strings.Contains(strings.Join(st, "\n"), "MASQUERADE") {
				t.Fatalf("no masquerade rule of the pod after setup: the test proves nothing:\n%s", strings.Join(st, "\n"))
			}
			if err := tc.lose(res.NetNS); err != nil {
				t.Fatal(err)
			}
			if err := Teardown(ctx, podDir, uuid, cfg.PluginDirs); err != nil {
				t.Fatal(err)
			}
			// The host's end of the veth and its route go at once
			// (dropHostPeers), not when the kernel gets round to
			// destroying the lost namespace (from a work queue: over a
			// minute on a loaded machine).
			st := hostState(t, keys, ips, nil)
			if len(st) != 0 {
				t.Errorf("left on the host after teardown:\n%s", strings.Join(st, "\n"))
			}
			if ents, _ := os.ReadDir(filepath.Join(podDir, network.PodNetDir)); len(ents) > 0 {
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), "standin") {
						t.Errorf("stand-in left in the pod's net directory: %s", e.Name())
					}
				}
			}
		})
	}
}

func TestNoneIsLoopbackOnly(t *testing.T) {
	plugins(t)
	podDir := t.TempDir()
	p := filepath.Join(podDir, "netns")
	if err := CreateNetNS(p); err != nil {
		t.Fatal(err)
	}
	defer DeleteNetNS(p)
	b, err := exec.Command("nsenter", "--net="+p, "ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Count(strings.TrimSpace(string(b)), "\n") != 0 || !strings.Contains(string(b), "lo:") || !strings.Contains(string(b), "UP") {
		t.Errorf("links in a new netns: %v\n%s", err, b)
	}
}

// TestManyPodsLeaveNothing attaches and detaches the default network (with
// a forwarded port) for 100 pods, four at a time, and checks that the host
// holds nothing of theirs afterwards: no veth, route, iptables rule or
// host-local reservation.
func TestManyPodsLeaveNothing(t *testing.T) {
	bin := plugins(t)
	if testing.Short() {
		t.Skip("100 attachments: not in -short")
	}
	ctx := context.Background()
	nets := selectNets(t, nil, "default")
	const n, par = 100, 4
	ids := make([]string, n)
	ips := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ids[i] = newUUID(t, 1000+i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			podDir := filepath.Join(t.TempDir(), "pod")
			if err := os.Mkdir(podDir, 0o755); err != nil {
				errs <- err
				return
			}
			cfg := Config{PodDir: podDir, UUID: ids[i], Nets: nets, PluginDirs: []string{bin},
				Ports: []PortMapping{{HostPort: 20000 + i, ContainerPort: 80, Protocol: "tcp"}}}
			res, err := Setup(ctx, cfg)
			if err == nil {
				ips[i] = res.PodIP().String()
			}
			if terr := Teardown(ctx, podDir, ids[i], cfg.PluginDirs); err == nil {
				err = terr
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var keys []string
	for _, ip := range ips {
		if ip != "" {
			keys = append(keys, ip+" ")
		}
	}
	if st := hostState(t, ids, keys, nil); len(st) != 0 {
		t.Errorf("left on the host after %d pods:\n%s", n, strings.Join(st, "\n"))
	}
}

// BenchmarkSetup is what a network adds to a pod's start: the namespace
// and the attachment (Teardown, at gc, is not timed), for the default
// network as rkt 1.30 had it (ptp's masquerade per pod: ten iptables
// executions), as ours is (one rule for the subnet, installed by the
// network's first pod: another pod holds it here, as a host running pods
// does) and without masquerade. cpu-ms/op is the CPU time of the process
// and the plugins it ran, steadier than the time under load.
func BenchmarkSetup(b *testing.B) {
	asroot.Require(b, "network namespaces, veths and iptables")
	pluginsOnce.Do(func() { pluginsDir, pluginsErr = buildPlugins() })
	if pluginsErr != nil {
		b.Fatal(pluginsErr)
	}
	ctx := context.Background()
	subnet := fmt.Sprintf("10.254.%d.0/24", os.Getpid()%250)
	conf := func(masq string) []network.Selected {
		c := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"bench%d","type":"ptp",%s,
"ipam":{"type":"host-local","subnet":%q,"routes":[{"dst":"0.0.0.0/0"}]}}`, os.Getpid(), masq, subnet)
		return []network.Selected{{Conf: network.Conf{Name: fmt.Sprintf("bench%d", os.Getpid()), Type: "ptp", File: "bench.conf", Bytes: []byte(c)}}}
	}
	seq := 0
	setup := func(b *testing.B, nets []network.Selected) (Config, error) {
		seq++
		podDir := b.TempDir()
		cfg := Config{PodDir: podDir, UUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", os.Getpid(), 5000+seq), Nets: nets, PluginDirs: []string{pluginsDir}}
		_, err := Setup(ctx, cfg)
		return cfg, err
	}
	for _, v := range []struct{ name, masq string }{
		{"ptp-ipMasq", `"ipMasq":true`},
		{"subnet-masq", `"ipMasq":false,"` + network.SubnetMasqKey + `":true`},
		{"no-masq", `"ipMasq":false`},
	} {
		b.Run(v.name, func(b *testing.B) {
			nets := conf(v.masq)
			holder, err := setup(b, nets)
			defer Teardown(ctx, holder.PodDir, holder.UUID, holder.PluginDirs)
			if err != nil {
				b.Fatal(err)
			}
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c0 := cpuTime()
				cfg, err := setup(b, nets)
				cpu += cpuTime() - c0
				b.StopTimer()
				if terr := Teardown(ctx, cfg.PodDir, cfg.UUID, cfg.PluginDirs); err == nil {
					err = terr
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time of this process and of its waited-for children.
func cpuTime() time.Duration {
	var self, kids unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
}

// TestSubnetMasquerade: a network asking for a subnet masquerade gets one
// rule for its subnet when its first pod attaches, kept while any pod is
// attached (once, however many), removed with the last; the plugins make
// no masquerade of their own. The network and its subnet are the test's
// own, so the count is too.
func TestSubnetMasquerade(t *testing.T) {
	bin := plugins(t)
	old := SubnetMasqDir
	SubnetMasqDir = t.TempDir()
	t.Cleanup(func() { SubnetMasqDir = old })
	name := fmt.Sprintf("masqtest%d", os.Getpid())
	subnet := fmt.Sprintf("10.252.%d.0/24", os.Getpid()%250)
	conf := fmt.Sprintf(`{"cniVersion":"0.4.0","name":%q,"type":"ptp","ipMasq":false,%q:true,
"ipam":{"type":"host-local","subnet":%q,"dataDir":%q,"routes":[{"dst":"0.0.0.0/0"}]}}`, name, network.SubnetMasqKey, subnet, t.TempDir())
	nets := []network.Selected{{Conf: network.Conf{Name: name, Type: "ptp", File: "10-masq.conf", Bytes: []byte(conf)}}}
	jumps := func() int {
		b, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, b)
		}
		return strings.Count(string(b), "-A POSTROUTING -s "+subnet+` -m comment --comment "rkt subnet masquerade: `+name+`"`)
	}
	ctx := context.Background()
	var pods []string
	var ids []string
	for i := 0; i < 3; i++ {
		podDir := t.TempDir()
		ids = append(ids, newUUID(t, 200+i))
		pods = append(pods, podDir)
		cfg := Config{PodDir: podDir, UUID: ids[i], Nets: nets, PluginDirs: []string{bin}}
		_, err := Setup(ctx, cfg)
		t.Cleanup(func() { Teardown(ctx, podDir, cfg.UUID, cfg.PluginDirs) })
		if err != nil {
			t.Fatal(err)
		}
		if n := jumps(); n != 1 {
			t.Errorf("%d pods attached: %d masquerade jumps for the subnet, want 1", i+1, n)
		}
	}
	if st := hostState(t, ids, nil, nil); strings.Contains(strings.Join(st, "\n"), "MASQUERADE") {
		t.Errorf("the plugin made masquerade rules of its own:\n%s", strings.Join(st, "\n"))
	}
	for i, podDir := range pods {
		if err := Teardown(ctx, podDir, ids[i], []string{bin}); err != nil {
			t.Fatal(err)
		}
		want := 1
		if i == len(pods)-1 {
			want = 0
		}
		if n := jumps(); n != want {
			t.Errorf("%d pods detached: %d masquerade jumps, want %d", i+1, n, want)
		}
	}
	if b, _ := exec.Command("iptables-save", "-t", "nat").CombinedOutput(); strings.Contains(string(b), (&subnetMasq{network: name}).chain()) {
		t.Errorf("the subnet's chain is left after the last pod")
	}
}

func TestSubnetMasqOf(t *testing.T) {
	for _, tc := range []struct {
		conf, want string
		bad        bool
	}{
		{`{"type":"ptp","ipMasq":true,"ipam":{"subnet":"10.1.0.0/16"}}`, "", false},
		{`{"type":"ptp","rktSubnetMasq":true,"ipam":{"subnet":"10.1.2.3/16"}}`, "10.1.0.0/16", false},
		{`{"type":"ptp","rktSubnetMasq":true,"ipam":{"ranges":[[{"subnet":"10.9.8.0/24"}]]}}`, "10.9.8.0/24", false},
		{`{"type":"ptp","rktSubnetMasq":true,"ipam":{}}`, "", true},
		{`{"type":"ptp","rktSubnetMasq":true,"ipam":{"subnet":"fd00::/64"}}`, "", true},
		{`not json`, "", false},
	} {
		m, err := subnetMasqOf("n", [][]byte{[]byte(tc.conf)})
		switch {
		case tc.bad:
			if !errors.Is(err, network.ErrBadConf) {
				t.Errorf("%s: err %v, want ErrBadConf", tc.conf, err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.conf, err)
		case tc.want == "" && m != nil, tc.want != "" && (m == nil || m.subnet.String() != tc.want):
			t.Errorf("%s: %+v, want subnet %q", tc.conf, m, tc.want)
		}
	}
	if c := (&subnetMasq{network: "a-network-with-a-rather-long-name"}).chain(); len(c) > 28 {
		t.Errorf("chain name %q longer than iptables takes", c)
	}
}
