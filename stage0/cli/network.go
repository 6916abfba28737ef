package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/network"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

// checkNetwork refuses, before anything is made, a --net list or --port
// set the pod cannot have: a malformed list, an unknown network (naming
// it), host or none combined with others or with --port, a network other
// than the host's on fly, a port name no app declares, a host port another
// running pod forwards. self is the pod's UUID when it exists already.
func checkNetwork(g *globals, rf runtimeFlags, pm *schema.PodManifest, stage1Name, self string) error {
	if err := checkPortNames(pm); err != nil {
		return err
	}
	if err := checkDNSFlags(rf); err != nil {
		return err
	}
	list, err := network.ParseList(rf.Net)
	if err != nil {
		return usageError{err}
	}
	if stage1Name == stage1.NameFly {
		if len(rf.Net) > 0 && !list.Host() {
			return usageErrorf("--net=%s: the fly stage1 runs apps in the host's network; only --net=host is possible", strings.Join(list.Strings(), ","))
		}
		if len(pm.Ports) > 0 {
			return usageErrorf("--port %s: the fly stage1 shares the host's network, there is nothing to forward", pm.Ports[0].Name)
		}
		return nil
	}
	if len(pm.Ports) > 0 && (list.Host() || list.None()) {
		return usageErrorf("--port %s cannot be used with --net=%s: the pod has no network of its own to forward to", pm.Ports[0].Name, list[0].Name)
	}
	if !list.Host() && !list.None() {
		confs, err := network.LoadConfs(netConfDirs(g))
		if err != nil {
			return err
		}
		if _, err := network.Select(confs, list); err != nil {
			return usageError{err}
		}
	}
	return checkPortsFree(g, pm, self)
}

// netConfDirs are the net.d directories stage0 and the stage1 read, in
// order of precedence (later wins).
func netConfDirs(g *globals) []string {
	return []string{filepath.Join(g.SystemConfig, network.ConfDir), filepath.Join(g.LocalConfig, network.ConfDir)}
}

// appPort is the app port named by a --port of pm; ok is false for an
// unknown name.
func appPort(pm *schema.PodManifest, name types.ACName) (types.Port, bool) {
	for _, ra := range pm.Apps {
		if ra.App == nil {
			continue
		}
		for _, p := range ra.App.Ports {
			if p.Name == name {
				return p, true
			}
		}
	}
	return types.Port{}, false
}

func checkPortNames(pm *schema.PodManifest) error {
	for _, ep := range pm.Ports {
		if _, ok := appPort(pm, ep.Name); !ok {
			var names []string
			for _, ra := range pm.Apps {
				if ra.App != nil {
					for _, p := range ra.App.Ports {
						names = append(names, p.Name.String())
					}
				}
			}
			known := "the images declare no ports"
			if len(names) > 0 {
				known = "ports: " + strings.Join(names, ", ")
			}
			return usageErrorf("--port %s:%d: no app of the pod has a port named %q (%s)", ep.Name, ep.HostPort, ep.Name, known)
		}
	}
	return nil
}

type hostPort struct {
	proto string
	ip    net.IP
	port  uint
}

func forwarded(pm *schema.PodManifest) []hostPort {
	var out []hostPort
	for _, ep := range pm.Ports {
		p, ok := appPort(pm, ep.Name)
		if !ok {
			continue
		}
		n := p.Count
		if n < 1 {
			n = 1
		}
		for k := uint(0); k < n; k++ {
			out = append(out, hostPort{strings.ToLower(p.Protocol), ep.HostIP, ep.HostPort + k})
		}
	}
	return out
}

func (a hostPort) overlaps(b hostPort) bool {
	if a.port != b.port || a.proto != b.proto {
		return false
	}
	return a.ip == nil || b.ip == nil || a.ip.IsUnspecified() || b.ip.IsUnspecified() || a.ip.Equal(b.ip)
}

// checkPortsFree refuses host ports that a running pod forwards already.
func checkPortsFree(g *globals, pm *schema.PodManifest, self string) error {
	want := forwarded(pm)
	if len(want) == 0 {
		return nil
	}
	pods, err := pod.List(g.Dir)
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", g.Dir, err)
	}
	defer func() {
		for _, p := range pods {
			p.Close()
		}
	}()
	for _, p := range pods {
		if p.State() != pod.Running || p.UUID.String() == self {
			continue
		}
		other, _, err := p.Manifest()
		if err != nil {
			continue
		}
		for _, h := range forwarded(other) {
			for _, w := range want {
				if w.overlaps(h) {
					return usageErrorf("--port: host port %d/%s is already forwarded to running pod %s", w.port, w.proto, p.UUID)
				}
			}
		}
	}
	return nil
}

// stage1NameIn is the name of a stored stage1 image; "" when unknown.
func stage1NameIn(st interface {
	GetImageManifest(string) (*schema.ImageManifest, error)
}, key string) string {
	im, err := st.GetImageManifest(key)
	if err != nil {
		return ""
	}
	return im.Name.String()
}

// stage1NameOf is the name of a prepared pod's stage1 image.
func stage1NameOf(podDir string) string {
	b, err := os.ReadFile(pod.Stage1ManifestPath(podDir))
	if err != nil {
		return ""
	}
	var im schema.ImageManifest
	if json.Unmarshal(b, &im) != nil {
		return ""
	}
	return im.Name.String()
}

// netWait bounds how long status and list wait for a starting pod's
// networks to be attached.
const netWait = 10 * time.Second

// podNetworks reads a running pod's net-info.json. A pod whose stage1 is
// still attaching its networks (the pod's net directory exists but
// net-info.json does not yet) is waited for while it keeps running, so
// that the first status after `rkt run` shows the networks, as clients
// like Nomad's driver expect.
func podNetworks(p *pod.Pod) []netJSON {
	if p.State() != pod.Running {
		return nil
	}
	dir := p.Path()
	infos, err := network.LoadInfo(dir)
	for deadline := time.Now().Add(netWait); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
		if _, serr := os.Stat(filepath.Join(dir, network.PodNetDir)); serr != nil || p.Refresh() != nil || p.State() != pod.Running {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
		infos, err = network.LoadInfo(dir)
	}
	var out []netJSON
	for _, i := range infos {
		j := netJSON{NetName: i.NetName, NetConf: i.NetConf, PluginPath: i.PluginPath, IfName: i.IfName, Args: i.Args}
		if i.IP != nil {
			j.IP = i.IP.String()
		}
		if i.Mask != nil {
			j.Mask = i.Mask.String()
		}
		out = append(out, j)
	}
	return out
}

// markNetworkPending creates the pod's net directory before the stage1
// runs when the pod will have networks of its own, so that status knows to
// wait for them (see podNetworks).
func markNetworkPending(podDir string, rf runtimeFlags, stage1Name string) error {
	list, err := network.ParseList(rf.Net)
	if err != nil || list.Host() || list.None() || stage1Name == stage1.NameFly {
		return err
	}
	if err := os.MkdirAll(filepath.Join(podDir, network.PodNetDir), 0o755); err != nil {
		return fmt.Errorf("creating the pod's net directory: %w", err)
	}
	return nil
}

// checkDNSFlags refuses --dns*, --hosts-entry values holding a control
// character: written into resolv.conf and hosts, a newline would add lines
// of the caller's choosing.
func checkDNSFlags(rf runtimeFlags) error {
	for _, f := range []struct {
		flag string
		vals []string
	}{{"--dns", rf.DNS}, {"--dns-search", rf.DNSSearch}, {"--dns-opt", rf.DNSOpt}, {"--dns-domain", []string{rf.DNSDomain}}, {"--hosts-entry", rf.HostsEntry}} {
		for _, v := range f.vals {
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return usageErrorf("%s %q: control characters are not allowed", f.flag, v)
			}
		}
	}
	for _, ns := range rf.DNS {
		if ns != "host" && ns != "none" && net.ParseIP(ns) == nil {
			return usageErrorf("--dns %q: want an IP address, host or none", ns)
		}
	}
	return nil
}
