package tests

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/stage1/podnet/podnettest"
	"github.com/rktng/rkt/tests/testutil"
)

// Network tests: every address used lives on links and in namespaces the
// pods or the test create (172.16.28.0/24 and 172.31.0.0/16 on the pods'
// veths, 10.250.x.y on the test's own veth pairs), or on loopback.

type podNet struct {
	NetName string `json:"netName"`
	NetConf string `json:"netConf"`
	IfName  string `json:"ifName"`
	IP      string `json:"ip"`
	Mask    string `json:"mask"`
	Args    string `json:"args"`
}

func networksOf(t *testing.T, p testutil.Pod) []podNet {
	t.Helper()
	var out []podNet
	for _, raw := range p.Networks {
		var n podNet
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatalf("networks entry %s: %v", raw, err)
		}
		out = append(out, n)
	}
	return out
}

// serverImage serves TCP on port 8080 (named "http" in its manifest)
// until /done exists in its rootfs.
func serverImage(c *testutil.Ctx, name string, extra ...string) string {
	args := append([]string{"--serve-tcp=:8080", "--print-ifaces", "--read-file=/etc/hosts", "--print-msg=net-ready"}, extra...)
	img := c.A.InspectImage(name, append(args, "--wait-file=/done")...)
	img.Manifest.App.Ports = []types.Port{{Name: "http", Protocol: "tcp", Port: 8080}}
	return c.WriteImage(img)
}

// peerNS is a network namespace the test made, joined to the host by a
// veth pair: host side 10.250.N.1/30, peer side 10.250.N.2/30. It has no
// route beyond its /30: only a pod's traffic masqueraded to the host's
// address there gets an answer, as from another host on the network.
type peerNS struct {
	name, hostIP, peerIP, link string
}

func newPeerNS(t *testing.T, n int) *peerNS {
	t.Helper()
	p := &peerNS{name: fmt.Sprintf("rkt-test-%d-%d", os.Getpid(), n), link: fmt.Sprintf("rkp%d_%d", os.Getpid()%10000, n),
		hostIP: fmt.Sprintf("10.250.%d.1", n), peerIP: fmt.Sprintf("10.250.%d.2", n)}
	for _, c := range [][]string{
		{"ip", "netns", "add", p.name},
		{"ip", "link", "add", p.link, "type", "veth", "peer", "name", "eth0", "netns", p.name},
		{"ip", "addr", "add", p.hostIP + "/30", "dev", p.link},
		{"ip", "link", "set", p.link, "up"},
		{"ip", "-n", p.name, "addr", "add", p.peerIP + "/30", "dev", "eth0"},
		{"ip", "-n", p.name, "link", "set", "eth0", "up"},
		{"ip", "-n", p.name, "link", "set", "lo", "up"},
	} {
		if b, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			p.close()
			t.Fatalf("%v: %v\n%s", c, err, b)
		}
	}
	t.Cleanup(p.close)
	return p
}

func (p *peerNS) close() {
	exec.Command("ip", "link", "del", p.link).Run()
	exec.Command("ip", "netns", "del", p.name).Run()
}

// run runs the inspect binary in the peer namespace.
func (p *peerNS) start(c *testutil.Ctx, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.name, c.A.Inspect}, args...)...)
	return cmd
}

// hostTraces lists what the host holds that mentions any of keys (pod
// UUIDs, pod IPs): links, routes, iptables rules, IPAM reservations.
func hostTraces(t *testing.T, keys []string) []string {
	t.Helper()
	out, err := podnettest.HostTraces(keys)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func requireNetTools(c *testutil.Ctx) {
	c.RequireCaps(stage1test.Networks)
	for _, tool := range []string{"ip", "iptables-save"} {
		c.RequireTool(tool)
	}
}

func podRootfsFile(c *testutil.Ctx, uuid, app, path string) string {
	return filepath.Join(c.Dir, "pods", "run", uuid, "stage1", "rootfs", "opt", "stage2", app, "rootfs", path)
}

func uuidFrom(t *testing.T, file string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && testutil.IsUUID(strings.TrimSpace(string(b))) {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no UUID in %s", file)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNetDefault: two pods on the default network get distinct IPs and
// reach each other; the server's --port is reached from the host on
// 127.0.0.1 and from a namespace outside (through the host's address
// there); a second pod cannot take the same host port; a pod on
// default-restricted cannot reach outside; the outside answers the pods
// on default only through their masquerade; list and status show the
// network; gc leaves nothing on the host.
func TestNetDefault(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	peer := newPeerNS(t, 10+os.Getpid()%200)
	outside := peer.start(c, "--serve-tcp="+peer.peerIP+":9090", "--sleep=120s")
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { outside.Process.Kill(); outside.Wait() }()

	hostPort := freePort(t)
	srv := serverImage(c, "example.com/net-server")
	uuidFile := c.Path("a.uuid")
	a := c.StartRun("--uuid-file-save="+uuidFile, "--hostname=neta", "--port=http:"+strconv.Itoa(hostPort), srv)
	out := waitOutput(t, a, "net-ready")
	uuidA := uuidFrom(t, uuidFile)
	defer os.WriteFile(podRootfsFile(c, uuidA, "net-server", "done"), nil, 0o644)

	st := c.Status(uuidA)
	nets := networksOf(t, st)
	if len(nets) != 1 || nets[0].NetName != "default" || nets[0].IfName != "eth0" || nets[0].Mask != "255.255.255.0" ||
		!strings.HasPrefix(nets[0].IP, "172.16.28.") || nets[0].NetConf != "net/99-default.conf" {
		t.Fatalf("status networks: %+v", nets)
	}
	ipA := nets[0].IP
	if !strings.Contains(out, "iface=eth0 addrs="+ipA+"/24") {
		t.Errorf("pod's interfaces do not show eth0 with %s:\n%s", ipA, out)
	}
	if !strings.Contains(out, ipA+"\tneta") {
		t.Errorf("/etc/hosts does not name the pod's hostname with its IP:\n%s", out)
	}
	if v, _ := value(c.ExpectOK(c.Rkt("status", uuidA)).Stdout, "networks"); v != "default:ip4="+ipA {
		t.Errorf("status text networks=%q, want default:ip4=%s", v, ipA)
	}
	if l := c.ExpectOK(c.Rkt("list", "--no-legend")).Stdout; !strings.Contains(l, "default:ip4="+ipA) {
		t.Errorf("list does not show default:ip4=%s:\n%s", ipA, l)
	}

	// The forwarded port, from the host's loopback and from outside.
	if got := dialOut(t, exec.Command(c.A.Inspect, "--dial-tcp=127.0.0.1:"+strconv.Itoa(hostPort))); got != "served=neta" {
		t.Errorf("127.0.0.1:%d from the host: %q", hostPort, got)
	}
	if got := dialOut(t, peer.start(c, "--dial-tcp="+peer.hostIP+":"+strconv.Itoa(hostPort))); got != "served=neta" {
		t.Errorf("%s:%d from outside: %q", peer.hostIP, hostPort, got)
	}
	// The same host port for another pod is refused before it starts.
	r := c.Run("--port=http:"+strconv.Itoa(hostPort), srv)
	c.ExpectFailure(r, "already forwarded")

	// A second pod reaches the first and the outside; a restricted one
	// reaches neither the outside nor gets a default route.
	client := c.WriteImage(c.A.InspectImage("example.com/net-client", "--print-ifaces", "--dial-tcp="+ipA+":8080", "--dial-tcp="+peer.peerIP+":9090"))
	r = c.ExpectOK(c.Run(client))
	lines := strings.Split(testutil.StripLogPrefixes(r.Stdout), "\n")
	var dials []string
	var ipB string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "dial="); ok {
			dials = append(dials, v)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "iface=eth0 addrs="); ok {
			ipB, _, _ = strings.Cut(v, "/")
		}
	}
	if len(dials) != 2 || dials[0] != "served=neta" || !strings.HasPrefix(dials[1], "served=") {
		t.Errorf("client on default: dials %q\n%v", dials, r)
	}
	if ipB == "" || ipB == ipA || !strings.HasPrefix(ipB, "172.16.28.") {
		t.Errorf("second pod's IP %q (first %s)", ipB, ipA)
	}
	r = c.ExpectOK(c.Run("--net=default-restricted", client))
	if out := testutil.StripLogPrefixes(r.Stdout); !strings.Contains(out, "iface=eth0 addrs=172.31.") ||
		strings.Count(out, "dial=error") != 2 {
		t.Errorf("client on default-restricted reached outside its network:\n%s", out)
	}

	os.WriteFile(podRootfsFile(c, uuidA, "net-server", "done"), nil, 0o644)
	c.ExpectOK(a.Wait(testutil.DefaultTimeout))
	var uuids []string
	for _, p := range c.List() {
		uuids = append(uuids, p.Name)
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if tr := hostTraces(t, append(uuids, ipA+" ", ipB+" ")); len(tr) > 0 {
		t.Errorf("left on the host after gc:\n%s", strings.Join(tr, "\n"))
	}
}

func dialOut(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%v: %v\n%s", cmd.Args, err, b)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "dial=")
}

// TestNetNoneAndRefusals: --net=none has loopback only; bad --net and
// --port values are refused before any pod is made, naming the culprit.
func TestNetNoneAndRefusals(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	img := c.A.InspectImage("example.com/net-none", "--print-ifaces")
	img.Manifest.App.Ports = []types.Port{{Name: "http", Protocol: "tcp", Port: 8080}}
	aci := c.WriteImage(img)
	if c.Stage1().Flavor == "fly" {
		c.ExpectFailure(c.Run("--net=default", aci), "fly", "host")
		c.ExpectOK(c.Run("--net=host", aci))
		return
	}
	r := c.ExpectOK(c.Run("--net=none", aci))
	if out := testutil.StripLogPrefixes(r.Stdout); strings.Count(out, "iface=") != 1 || !strings.Contains(out, "iface=lo ") {
		t.Errorf("--net=none interfaces:\n%s", out)
	}
	before := len(c.List())
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--net=nosuchnet"}, []string{"nosuchnet"}},
		{[]string{"--net=default,nosuch2:IP=1.2.3.4"}, []string{"nosuch2"}},
		{[]string{"--net=host,default"}, []string{"host"}},
		{[]string{"--net=default:IPnoequals"}, []string{"default", "IPnoequals"}},
		{[]string{"--port=nosuchport:8081"}, []string{"nosuchport"}},
		{[]string{"--net=host", "--port=http:8081"}, []string{"--port", "host"}},
		{[]string{"--net=none", "--port=http:8081"}, []string{"--port", "none"}},
	} {
		r := c.Run(append(tc.args, aci)...)
		c.ExpectFailure(r, tc.want...)
	}
	if after := len(c.List()); after != before {
		t.Errorf("refused runs left %d pods", after-before)
	}
	// run-prepared refuses too, and the prepared pod stays prepared.
	uuid := c.MustPrepare("--port=http:8082", aci)
	c.ExpectFailure(c.Rkt("run-prepared", "--net=host", uuid), "--port", "host")
	c.ExpectFailure(c.Rkt("run-prepared", "--net=nosuch3", uuid), "nosuch3")
}

// TestNetDNSHosts: --dns*, --hosts-entry give the pod's resolv.conf and
// hosts; without --dns there is no resolv.conf (the image has none); the
// hosts file names the pod; control characters are refused.
func TestNetDNSHosts(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	aci := c.WriteImage(c.A.InspectImage("example.com/net-dns", "--read-file=/etc/resolv.conf", "--read-file=/etc/hosts"))
	net := "--net=none"
	if c.Stage1().Flavor == "fly" {
		net = "--net=host"
	}
	r := c.ExpectOK(c.Run(net, "--hostname=dnspod", "--dns=192.0.2.53", "--dns-search=example.test", "--dns-opt=ndots:3",
		"--dns-domain=example.test", "--hosts-entry=192.0.2.7=seven", aci))
	out := testutil.StripLogPrefixes(r.Stdout)
	for _, want := range []string{"nameserver 192.0.2.53", "search example.test", "options ndots:3", "domain example.test", "192.0.2.7 seven"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the pod's resolv.conf/hosts:\n%s", want, out)
		}
	}
	if c.Stage1().Flavor == "host" {
		plain := c.WriteImage(c.A.InspectImage("example.com/net-dns-default", "--stat-file=/etc/resolv.conf", "--read-file=/etc/hosts"))
		r = c.ExpectOK(c.Run("--hostname=dnspod2", plain))
		out = testutil.StripLogPrefixes(r.Stdout)
		if !strings.Contains(out, "/etc/resolv.conf: missing") {
			t.Errorf("resolv.conf without --dns and no DNS from the network:\n%s", out)
		}
		if !strings.Contains(out, "172.16.28.") || !strings.Contains(out, "\tdnspod2") {
			t.Errorf("hosts does not name the pod with its IP:\n%s", out)
		}
	}
	before := len(c.List())
	for _, bad := range []string{"--dns=192.0.2.1\nnameserver 6.6.6.6", "--dns-search=a\nnameserver 6.6.6.6", "--dns-opt=x\ry",
		"--hosts-entry=192.0.2.1=a\n6.6.6.6 evil", "--dns-domain=a\x01b", "--dns=notanip"} {
		c.ExpectFailure(c.Run(net, bad, aci), strings.SplitN(strings.TrimPrefix(bad, "--"), "=", 2)[0])
	}
	if after := len(c.List()); after != before {
		t.Errorf("refused runs left %d pods", after-before)
	}
}

// TestNetNomad runs a pod the way Nomad's rkt driver does: prepare with a
// port map after the image, run-prepared with --net, then polls status;
// the first poll that sees the pod running sees its network too.
func TestNetNomad(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	srv := serverImage(c, "example.com/net-nomad")
	hostPort := freePort(t)
	// Nomad puts --port after the image.
	uuid := c.MustPrepare("--quiet", srv, "--port=http:"+strconv.Itoa(hostPort))
	p := c.Start(testutil.Insecure, "run-prepared", "--net=default", "--mds-register=false", uuid)
	defer os.WriteFile(podRootfsFile(c, uuid, "net-nomad", "done"), nil, 0o644)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := c.Status(uuid)
		if st.State == "running" {
			nets := networksOf(t, st)
			if len(nets) != 1 || nets[0].NetName != "default" || !strings.HasPrefix(nets[0].IP, "172.16.28.") {
				t.Fatalf("first status of the running pod: networks %+v", nets)
			}
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("pod never ran: %+v %v", st, p.Wait(time.Second))
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitOutput(t, p, "net-ready")
	if got := dialOut(t, exec.Command(c.A.Inspect, "--dial-tcp=127.0.0.1:"+strconv.Itoa(hostPort))); !strings.HasPrefix(got, "served=") {
		t.Errorf("port map: 127.0.0.1:%d answered %q", hostPort, got)
	}
	os.WriteFile(podRootfsFile(c, uuid, "net-nomad", "done"), nil, 0o644)
	c.ExpectOK(p.Wait(testutil.DefaultTimeout))
}

// TestNetUserBridge: a user network in the local net.d (a bridge with its
// own IPAM directory and DNS) with CNI_ARGS asking for an address; the pod
// gets that address and the network's DNS as its resolv.conf.
func TestNetUserBridge(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	n := 10 + (os.Getpid()+7)%200
	br := fmt.Sprintf("rktbr%d", os.Getpid()%100000)
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	conf := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"testbr","type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
"ipam":{"type":"host-local","subnet":"10.251.%d.0/24","dataDir":%q},
"dns":{"nameservers":["10.251.%d.53"],"search":["rkt.test"]}}`, br, n, c.Path("ipam"), n)
	if err := os.MkdirAll(filepath.Join(c.LocalConfig, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.LocalConfig, "net.d", "10-testbr.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("10.251.%d.77", n)
	aci := c.WriteImage(c.A.InspectImage("example.com/net-bridge", "--print-ifaces", "--read-file=/etc/resolv.conf", "--read-file=/etc/hosts"))
	r := c.ExpectOK(c.Run("--net=testbr:IP="+want, "--hostname=brpod", aci))
	out := testutil.StripLogPrefixes(r.Stdout)
	for _, w := range []string{"iface=eth0 addrs=" + want + "/24", fmt.Sprintf("nameserver 10.251.%d.53", n), "search rkt.test", want + "\tbrpod"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in the pod's view:\n%s", w, out)
		}
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if ents, _ := os.ReadDir(filepath.Join(c.Path("ipam"), "testbr")); len(ents) > 2 { // lock, last_reserved_ip
		t.Errorf("IPAM reservations left after gc: %v", ents)
	}
}

// TestNetGCAndKill: pods started and gc'd, and rkt killed with SIGKILL at
// points spread over its network setup then gc'd, leave no link, route,
// iptables rule or IPAM reservation of theirs on the host (looked for by
// the pods' UUIDs, their IPs and their host-side veths).
//
// 100 pods go through rkt: 5 that boot and run their app, and 95 whose
// stage1 stops right after the network setup (a host volume that is a file
// where the image wants a directory is refused after the network is up:
// stage1/boot.Prepare). For the network those 95 are the same as booted
// pods: stage0 prepares them, the stage1's init attaches them (CNI ADD with
// the same plugins, records and namespace), gc runs their stage1's gc
// entrypoint (CNI DEL). Booting nspawn and systemd for each would cost
// 1-3 s a pod on a loaded 2-core CI machine, minutes for 100, and test
// nothing more of the network. They go in two rounds of gc, so as not to
// hold half of 172.16.28.0/24, which other pods on the host share.
func TestNetGCAndKill(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	aci := c.WriteImage(c.A.InspectImage("example.com/net-true"))
	sleeper := c.WriteImage(c.A.InspectImage("example.com/net-sleep", "--sleep=30s"))
	im := c.A.InspectImage("example.com/net-dirvol")
	im.Files = append(im.Files, acibuild.File{Path: "vol", Mode: os.ModeDir | 0o755, Type: tar.TypeDir})
	im.AddMountPoint("vol", "/vol", false)
	failsAfterNet := []string{"--volume=vol,kind=host,source=" + c.WriteFile("not-a-dir", "x"), c.WriteImage(im)}

	// gc collects the pods there are, checking first that each has left a
	// trace to look for, and checks the host for traces afterwards.
	gc := func(what string, want, wantIPs int) {
		t.Helper()
		pods := c.List()
		if len(pods) != want {
			t.Errorf("%s: %d pods, want %d", what, len(pods), want)
		}
		var keys []string
		for _, p := range pods {
			keys = append(keys, p.Name)
		}
		ips := podIPs(t, c, pods)
		if len(ips) < wantIPs {
			t.Errorf("%s: %d pods hold an IP before gc, want at least %d: the test proves little", what, len(ips), wantIPs)
		}
		links := hostLinks(t, c)
		if len(links) < wantIPs {
			t.Errorf("%s: %d host-side links recorded before gc, want at least %d", what, len(links), wantIPs)
		}
		if tr := hostTraces(t, links); wantIPs > 0 && len(tr) < wantIPs {
			t.Errorf("%s: %d of the pods' links on the host before gc, want %d: the filter is broken", what, len(tr), wantIPs)
		}
		keys = append(keys, links...)
		c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
		// A pod whose rkt was killed stays locked until its last process
		// (a plugin, nspawn) has gone, and gc leaves a locked pod: a
		// moment later, gc again takes it. One that stays is a leak.
		for deadline := time.Now().Add(testutil.Scale(30 * time.Second)); ; time.Sleep(200 * time.Millisecond) {
			left := c.List()
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d pods left after gc: %+v", what, len(left), left)
				break
			}
			c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
		}
		// Other pods on the host share the subnet: an IP released here
		// may be another's already.
		for _, ip := range ips {
			if !podnettest.ReservedByOther(ip, keys) {
				keys = append(keys, ip)
			}
		}
		if tr := hostTraces(t, keys); len(tr) > 0 {
			t.Errorf("%s: left on the host after gc:\n%s", what, strings.Join(tr, "\n"))
		}
	}

	for i := 0; i < 5; i++ {
		c.ExpectOK(c.Run(aci))
	}
	records := filepath.Join(c.Dir, "pods", "run", "*", "net", "*.runtime.json")
	// The record is written just before the plugins run: the kills land
	// in ptp's IPAM, veth and masquerade steps and in libcni's caching.
	// Killing rkt's process group kills the plugins too; killing rkt alone
	// (the stage1's init by then) leaves the plugin running, which holds
	// the pod's lock until it ends, so gc waits for it.
	kills := []struct {
		delay time.Duration
		group bool
	}{{0, true}, {10, true}, {25, true}, {50, true}, {80, true}, {120, true}, {0, false}, {25, false}}
	for _, k := range kills {
		before, _ := filepath.Glob(records)
		p := c.StartRun(sleeper)
		deadline := time.Now().Add(30 * time.Second)
		for {
			recs, _ := filepath.Glob(records)
			if len(recs) > len(before) || p.Exited() || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(k.delay * time.Millisecond)
		if k.group {
			syscall.Kill(-p.Pid(), syscall.SIGKILL)
		} else {
			syscall.Kill(p.Pid(), syscall.SIGKILL)
		}
		p.Wait(10 * time.Second)
	}
	// A kill that lands after the setup, in nspawn's start, leaves the
	// pod's processes to die a moment later; gc leaves running pods.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		running := 0
		for _, p := range c.List() {
			if p.State == "running" {
				running++
			}
		}
		if running == 0 {
			break
		}
	}
	gc(fmt.Sprintf("5 pods run and %d killed", len(kills)), 5+len(kills), 0)

	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for i := 0; i < 95/2+round; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c.Expect(c.Run(failsAfterNet...), 254)
			}()
		}
		wg.Wait()
		gc(fmt.Sprintf("round %d of pods stopped after their network setup", round+1), 95/2+round, 95/2+round)
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) > 0 {
		t.Errorf("mounts left after gc: %q", ms)
	}
}

// hostLinks are the host-side links of the pods' attachments, from
// libcni's cache of each ADD in the pods' directories, as `ip -o link`
// names them ("vethXXXX@").
func hostLinks(t *testing.T, c *testutil.Ctx) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.Dir, "pods", "*", "*", "net", "cache", "results", "*"))
	var out []string
	for _, f := range files {
		var cache struct {
			Result struct {
				Interfaces []struct {
					Name    string `json:"name"`
					Sandbox string `json:"sandbox"`
				} `json:"interfaces"`
			} `json:"result"`
		}
		b, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(b, &cache)
		}
		if err != nil {
			t.Fatalf("CNI cache %s: %v", f, err)
		}
		for _, i := range cache.Result.Interfaces {
			if i.Sandbox == "" && i.Name != "" {
				out = append(out, i.Name+"@")
			}
		}
	}
	return out
}

// podIPs are the addresses host-local reserved for pods (read before
// gc): the pods' IPs, also of a pod killed before anything recorded them.
func podIPs(t *testing.T, c *testutil.Ctx, pods []testutil.Pod) []string {
	t.Helper()
	ids := map[string]bool{}
	for _, p := range pods {
		ids[p.Name] = true
	}
	files, _ := filepath.Glob("/var/lib/cni/networks/default/*")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if id, _, _ := strings.Cut(string(b), "\n"); err == nil && ids[strings.TrimSpace(id)] {
			out = append(out, filepath.Base(f)+" ")
		}
	}
	return out
}

// TestNetPrivateMountNS: rkt run in a mount namespace of its own (unshare
// -m, as a unit with PrivateMounts= runs it, and as the site and stage1
// failure tests run it) binds the pod's netns there only, so the namespace
// is gone when gc runs outside; gc still removes everything of the pods
// from the host, their IP masquerade chains and forwarded ports included.
// Both ways seen to leak: a pod that ran and exited, and a stage1 that
// failed after its network was set up. The network masquerades per pod,
// with ptp's ipMasq, as rkt 1.30's default network did (ours masquerades
// per subnet, see TestNetDefault).
func TestNetPrivateMountNS(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	unshare := c.RequireTool("unshare")
	n := 10 + (os.Getpid()+13)%200
	conf := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"masqnet","type":"ptp","ipMasq":true,
"ipam":{"type":"host-local","subnet":"10.253.%d.0/24","dataDir":%q,"routes":[{"dst":"0.0.0.0/0"}]}}`, n, c.Path("ipam"))
	if err := os.MkdirAll(filepath.Join(c.LocalConfig, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.LocalConfig, "net.d", "10-masqnet.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	img := c.A.InspectImage("example.com/net-private", "--print-ifaces")
	img.Manifest.App.Ports = []types.Port{{Name: "http", Protocol: "tcp", Port: 8080}}
	aci := c.WriteImage(img)
	private := []string{unshare, "-m", "--propagation", "private"}
	r := c.ExpectOK(c.RunWith(testutil.Opts{Wrap: private}, "--net=masqnet", "--port=http:"+strconv.Itoa(freePort(t)), aci))
	if !strings.Contains(r.Stdout, fmt.Sprintf("iface=eth0 addrs=10.253.%d.", n)) {
		t.Errorf("the pod had no address on its network:\n%s", r.Stdout)
	}
	// The stage1 fails after the network is set up: no cgroupfs.
	noCgroups := append(private, "sh", "-c", `mount -t tmpfs tmpfs /sys/fs/cgroup && exec "$@"`, "sh")
	c.Expect(c.RunWith(testutil.Opts{Wrap: noCgroups}, "--net=masqnet", aci), 254)

	var keys []string
	for _, p := range c.List() {
		keys = append(keys, p.Name)
		infos, _ := filepath.Glob(filepath.Join(c.Dir, "pods", "*", p.Name, "net-info.json"))
		for _, f := range infos {
			b, _ := os.ReadFile(f)
			var nets []podNet
			if err := json.Unmarshal(b, &nets); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, n := range nets {
				keys = append(keys, n.IP+" ")
			}
		}
	}
	if len(keys) < 4 {
		t.Fatalf("want 2 pods with an IP each, got %q", keys)
	}
	if tr := hostTraces(t, keys); !strings.Contains(strings.Join(tr, "\n"), "MASQUERADE") {
		t.Fatalf("no masquerade rule of the pods before gc: the test proves nothing:\n%s", strings.Join(tr, "\n"))
	}
	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	if tr := hostTraces(t, keys); len(tr) > 0 {
		t.Errorf("left on the host after gc:\n%s", strings.Join(tr, "\n"))
	}
}

// TestNetGCStage1Unmounted: gc of a pod whose stage1 is not mounted any
// more, nor its netns bound, as after a reboot (simulated in a private
// mount namespace where everything under --dir is unmounted before gc):
// stage0 mounts the pod's stage1 from the store again for its gc
// entrypoint and the CNI plugins there, which release the pod's IP and
// remove its rules and forwarded port.
func TestNetGCStage1Unmounted(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	requireNetTools(c)
	unshare := c.RequireTool("unshare")
	img := c.A.InspectImage("example.com/net-reboot", "--print-ifaces")
	img.Manifest.App.Ports = []types.Port{{Name: "http", Protocol: "tcp", Port: 8080}}
	uuidFile := c.Path("uuid")
	c.ExpectOK(c.Run("--uuid-file-save="+uuidFile, "--port=http:"+strconv.Itoa(freePort(t)), c.WriteImage(img)))
	uuid := uuidFrom(t, uuidFile)
	podDir := filepath.Join(c.Dir, "pods", "run", uuid)
	if _, err := os.Stat(filepath.Join(podDir, "overlay-prepared")); err != nil {
		t.Skipf("the pod's stage1 is not an overlay mount (%v): nothing to unmount", err)
	}
	var nets []podNet
	b, err := os.ReadFile(filepath.Join(podDir, "net-info.json"))
	if err == nil {
		err = json.Unmarshal(b, &nets)
	}
	if err != nil || len(nets) != 1 {
		t.Fatalf("net-info.json: %v %+v", err, nets)
	}
	keys := []string{uuid, nets[0].IP + " "}
	if tr := strings.Join(hostTraces(t, keys), "\n"); !strings.Contains(tr, "dnat") || !strings.Contains(tr, "/var/lib/cni/networks") {
		t.Fatalf("no forwarded port or IP reservation of the pod before gc: the test proves nothing:\n%s", tr)
	}
	unmountAll := `m=$(awk -v d="$0/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
echo "unmounted $(echo "$m" | grep -c "/$1/")" >&2
echo "$m" | xargs -r -n1 umount -l && shift && exec "$@"`
	r := c.ExpectOK(c.RktWith(testutil.Opts{Wrap: []string{unshare, "-m", "--propagation", "private", "sh", "-c", unmountAll, c.Dir, uuid}},
		"gc", "--grace-period=0s"))
	if strings.Contains(r.Stderr, "unmounted 0") || !strings.Contains(r.Stderr, "unmounted ") {
		t.Fatalf("nothing of the pod was mounted: the test proves nothing: %v", r)
	}
	if strings.Contains(r.Stderr, "stage1 gc") {
		t.Errorf("the stage1's gc failed: %v", r)
	}
	var tr []string
	// The netns, still bound outside the test's mount namespace, goes
	// with the pod directory (and the veth with it) a little later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if tr = hostTraces(t, keys); len(tr) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(tr) > 0 {
		t.Errorf("left on the host after gc:\n%s", strings.Join(tr, "\n"))
	}
	if ms := testutil.MountsUnder(c.Dir); len(ms) > 0 {
		t.Errorf("mounts left after gc: %q", ms)
	}
}
