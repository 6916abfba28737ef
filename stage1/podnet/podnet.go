// Package podnet gives a stage1-host pod its network: a network namespace
// of its own, bind-mounted at the pod's netns file, attached to CNI networks
// through libcni and the CNI plugins, and the exact undoing of all of it at
// gc.
//
// Every attachment is recorded in the pod's net/ directory before the
// plugins are asked to add it, so a setup killed at any moment leaves a
// record of everything that may exist on the host; Teardown deletes what
// the records list (CNI DEL is idempotent), then the namespace.
package podnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/network"
	"github.com/rktng/rkt/common/pod"
)

// PortMapping is one forwarded port, in the portmap plugin's
// runtimeConfig shape.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Config is what Setup attaches.
type Config struct {
	PodDir     string
	UUID       string
	Nets       []network.Selected
	Ports      []PortMapping
	PluginDirs []string
}

// Result is the pod's network once set up.
type Result struct {
	NetNS string
	Infos []network.Info
	// DNS is the first non-empty DNS configuration a network returned.
	DNS *types.DNS
	// PortNet is the index in Infos of the network ports are forwarded on.
	PortNet int
}

// HostIP is the host's address on the pod's first network with one, where
// the pod reaches services on the host; nil when there is none.
func (r *Result) HostIP() net.IP {
	for _, i := range r.Infos {
		if i.HostIP != nil {
			return i.HostIP
		}
	}
	return nil
}

// PodIP is the pod's address on its first network; nil when none.
func (r *Result) PodIP() net.IP {
	for _, i := range r.Infos {
		if i.IP != nil {
			return i.IP
		}
	}
	return nil
}

// record is an attachment's runtime arguments, saved before ADD so that DEL
// can be given the same ones.
type record struct {
	Index          int            `json:"index"`
	Name           string         `json:"name"`
	ConfFile       string         `json:"confFile"` // relative to the pod directory
	IfName         string         `json:"ifName"`
	Args           string         `json:"args,omitempty"`
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`
}

const recordSuffix = ".runtime.json"

// NetNSPath is the pod's network namespace file.
func NetNSPath(podDir string) string { return filepath.Join(podDir, pod.NetNSFile) }

func netDir(podDir string) string { return filepath.Join(podDir, network.PodNetDir) }

func cacheDir(podDir string) string { return filepath.Join(netDir(podDir), "cache") }

// PluginDirs are the directories searched for CNI plugins: the stage1's
// own, then the host's user plugin directory.
func PluginDirs(stage1Rootfs string) []string {
	return []string{filepath.Join(stage1Rootfs, network.BuiltinPluginDir), network.UserPluginDir}
}

// Setup creates the pod's namespace (loopback up) and attaches cfg.Nets in
// order, as eth0, eth1, ...; ports are forwarded on the first network with
// IP masquerade, else the last one (rkt's rule). On failure what was made
// stays recorded for Teardown.
func Setup(ctx context.Context, cfg Config) (*Result, error) {
	if err := os.MkdirAll(netDir(cfg.PodDir), 0o755); err != nil {
		return nil, fmt.Errorf("creating the pod's net directory: %w", err)
	}
	res := &Result{NetNS: NetNSPath(cfg.PodDir), PortNet: -1}
	if err := CreateNetNS(res.NetNS); err != nil {
		return nil, err
	}
	if len(cfg.Ports) > 0 {
		res.PortNet = portNet(cfg.Nets)
		if res.PortNet < 0 {
			return nil, errors.New("--port: the pod has no network to forward ports on")
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, cacheDir(cfg.PodDir), nil)
	for i, n := range cfg.Nets {
		info, dns, err := attach(ctx, cni, cfg, i, i == res.PortNet)
		if err != nil {
			return nil, fmt.Errorf("adding network %q: %w", n.Name, err)
		}
		res.Infos = append(res.Infos, info)
		if res.DNS == nil && dns != nil && !dns.IsEmpty() {
			res.DNS = dns
		}
	}
	if err := network.SaveInfo(cfg.PodDir, res.Infos); err != nil {
		return nil, err
	}
	return res, nil
}

// portNet picks the network to forward ports on: the first with ipMasq,
// else the last; -1 when there is no network.
func portNet(nets []network.Selected) int {
	for i, n := range nets {
		var c map[string]any
		if json.Unmarshal(n.Bytes, &c) == nil && (c["ipMasq"] == true || c[network.SubnetMasqKey] == true) {
			return i
		}
	}
	return len(nets) - 1
}

func attach(ctx context.Context, cni *libcni.CNIConfig, cfg Config, i int, ports bool) (network.Info, *types.DNS, error) {
	n := cfg.Nets[i]
	list, err := confList(n.Conf, ports)
	if err != nil {
		return network.Info{}, nil, err
	}
	confFile, err := copyConf(cfg.PodDir, n.File, list.Bytes)
	if err != nil {
		return network.Info{}, nil, err
	}
	rec := record{Index: i, Name: n.Name, ConfFile: confFile, IfName: fmt.Sprintf(network.IfNamePattern, i), Args: n.Args}
	if ports {
		rec.CapabilityArgs = map[string]any{"portMappings": cfg.Ports}
	}
	if err := saveRecord(cfg.PodDir, rec); err != nil {
		return network.Info{}, nil, err
	}
	masq, err := subnetMasqOf(n.Name, pluginConfs(list))
	if err != nil {
		return network.Info{}, nil, err
	}
	if masq != nil {
		if err := masq.acquire(cfg.UUID, rec.IfName); err != nil {
			return network.Info{}, nil, err
		}
	}
	rt, err := rec.runtimeConf(cfg.UUID, NetNSPath(cfg.PodDir))
	if err != nil {
		return network.Info{}, nil, err
	}
	r, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return network.Info{}, nil, err
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return network.Info{}, nil, fmt.Errorf("reading the plugin's result: %w", err)
	}
	info := network.Info{NetName: n.Name, NetConf: confFile, IfName: rec.IfName, Args: n.Args}
	if len(list.Plugins) > 0 {
		info.PluginPath, _ = invoke.FindInPath(list.Plugins[0].Network.Type, cfg.PluginDirs)
	}
	for _, ipc := range res.IPs {
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			info.IP, info.Mask, info.HostIP = ip4, net.IP(ipc.Address.Mask), ipc.Gateway
			break
		}
	}
	return info, &res.DNS, nil
}

func pluginConfs(list *libcni.NetworkConfigList) [][]byte {
	var out [][]byte
	for _, p := range list.Plugins {
		out = append(out, p.Bytes)
	}
	return out
}

// confList turns a configuration into the list libcni runs, with the
// portmap plugin chained when ports are forwarded on it.
func confList(c network.Conf, ports bool) (*libcni.NetworkConfigList, error) {
	b := c.Bytes
	if c.Type != "" {
		// A single plugin's configuration becomes a list of one, as CNI
		// runtimes do (libcni runs lists only).
		var conf map[string]any
		if err := json.Unmarshal(c.Bytes, &conf); err != nil {
			return nil, fmt.Errorf("configuration %s: %v: %w", c.File, err, network.ErrBadConf)
		}
		var err error
		if b, err = json.Marshal(map[string]any{"name": conf["name"], "cniVersion": conf["cniVersion"], "plugins": []any{conf}}); err != nil {
			return nil, err
		}
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %v: %w", c.File, err, network.ErrBadConf)
	}
	if !ports {
		return list, nil
	}
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("configuration %s: %w", c.File, err)
	}
	plugins, _ := raw["plugins"].([]any)
	raw["plugins"] = append(plugins, map[string]any{
		"type":         "portmap",
		"snat":         true,
		"capabilities": map[string]bool{"portMappings": true},
	})
	// Chaining needs prevResult, from CNI 0.3.0 on.
	if v, _ := raw["cniVersion"].(string); v == "" || v < "0.3.0" {
		raw["cniVersion"] = "0.4.0"
	}
	withPorts, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(withPorts)
}

func copyConf(podDir, src string, b []byte) (string, error) {
	name := filepath.Base(src)
	rel := filepath.Join(network.PodNetDir, name)
	for k := 1; ; k++ {
		if _, err := os.Lstat(filepath.Join(podDir, rel)); errors.Is(err, os.ErrNotExist) {
			break
		}
		rel = filepath.Join(network.PodNetDir, fmt.Sprintf("%s.%d", name, k))
	}
	if err := os.WriteFile(filepath.Join(podDir, rel), b, 0o644); err != nil {
		return "", fmt.Errorf("copying network configuration: %w", err)
	}
	return rel, nil
}

func saveRecord(podDir string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p := filepath.Join(podDir, r.ConfFile+recordSuffix)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return fmt.Errorf("recording network %q: %w", r.Name, err)
	}
	return nil
}

func (r record) runtimeConf(uuid, netns string) (*libcni.RuntimeConf, error) {
	args, err := network.ParseArgs(r.Args)
	if err != nil {
		return nil, err
	}
	// Arguments are for whichever plugin knows them (host-local's IP=,
	// say); the others must not fail on them, by CNI's convention.
	if len(args) > 0 && !hasArg(args, "IgnoreUnknown") {
		args = append([][2]string{{"IgnoreUnknown", "1"}}, args...)
	}
	return &libcni.RuntimeConf{ContainerID: uuid, NetNS: netns, IfName: r.IfName, Args: args, CapabilityArgs: r.CapabilityArgs}, nil
}

func hasArg(args [][2]string, k string) bool {
	for _, a := range args {
		if a[0] == k {
			return true
		}
	}
	return false
}

func loadRecords(podDir string) ([]record, error) {
	ents, err := os.ReadDir(netDir(podDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pod's net directory: %w", err)
	}
	var recs []record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), recordSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(netDir(podDir), e.Name()))
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("network record %s: %w", e.Name(), err)
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Index > recs[j].Index })
	return recs, nil
}

// Teardown deletes every recorded attachment (last first) and then the
// namespace. It is idempotent: what is gone is skipped, and a record is
// removed only once its DEL succeeded. An attachment whose interface is no
// longer there (its namespace went with the mount namespace it was bound
// in) is deleted through a stand-in namespace (standin.go).
func Teardown(ctx context.Context, podDir, uuid string, pluginDirs []string) error {
	recs, err := loadRecords(podDir)
	if err != nil {
		return err
	}
	netns := NetNSPath(podDir)
	if !IsNetNS(netns) {
		netns = "" // plugins then release what lives outside the namespace
	}
	// For the stand-ins; missing (a pod of an earlier rkt) is fine.
	infos, _ := network.LoadInfo(podDir)
	cni := libcni.NewCNIConfigWithCacheDir(pluginDirs, cacheDir(podDir), nil)
	var errs []error
	for _, r := range recs {
		if err := detach(ctx, cni, podDir, uuid, netns, infos, r); err != nil {
			errs = append(errs, fmt.Errorf("deleting network %q: %w", r.Name, err))
		}
	}
	if err := DeleteNetNS(standInPath(podDir)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Keep the namespace: a later gc retries with it.
		return errors.Join(errs...)
	}
	return DeleteNetNS(NetNSPath(podDir))
}

func detach(ctx context.Context, cni *libcni.CNIConfig, podDir, uuid, netns string, infos []network.Info, r record) error {
	conf := filepath.Join(podDir, r.ConfFile)
	b, err := os.ReadFile(conf)
	if errors.Is(err, os.ErrNotExist) {
		return os.Remove(conf + recordSuffix)
	}
	if err != nil {
		return err
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return fmt.Errorf("%s: %w", r.ConfFile, err)
	}
	rt, err := r.runtimeConf(uuid, netns)
	if err != nil {
		return err
	}
	var standInErr error
	var lost []*net.IPNet
	if rt.NetNS, lost, standInErr = delNetNS(cni, list, rt, podDir, infos); rt.NetNS == standInPath(podDir) {
		defer DeleteNetNS(rt.NetNS)
	}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		return errors.Join(err, standInErr)
	}
	if err := dropHostPeers(lost); err != nil {
		return errors.Join(err, standInErr)
	}
	if masq, _ := subnetMasqOf(r.Name, pluginConfs(list)); masq != nil {
		if err := masq.release(uuid, r.IfName); err != nil {
			return errors.Join(err, standInErr)
		}
	}
	if err := os.Remove(conf + recordSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// What the plugins did release stays released; a stand-in that could
	// not be made is reported (the masquerade may be left).
	return standInErr
}

// delNetNS is the namespace DEL of the attachment is given: the pod's
// while it holds the pod's interface, else a stand-in holding the
// interface's recorded addresses (returned: the pod's lost addresses),
// else the pod's (or none) as it is.
func delNetNS(cni *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, podDir string, infos []network.Info) (string, []*net.IPNet, error) {
	if rt.NetNS != "" {
		if ok, err := hasLink(rt.NetNS, rt.IfName); ok || err != nil {
			return rt.NetNS, nil, err
		}
	}
	addrs := recordedAddrs(cni, list, rt, infos)
	if len(addrs) == 0 {
		return rt.NetNS, nil, nil
	}
	if err := createStandIn(standInPath(podDir), rt.IfName, addrs); err != nil {
		return rt.NetNS, addrs, err
	}
	return standInPath(podDir), addrs, nil
}

// CreateNetNS makes a network namespace with loopback up and binds it at
// path (a new file), as a private mount so that unmounting it later never
// propagates. The namespace is made on a thread of its own that exits
// afterwards, so no other goroutine ever runs in it.
func CreateNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("creating the pod's netns file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine's end takes the thread, and the
		// namespace it is in, away.
		runtime.LockOSThread()
		errc <- newNetNS(path)
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func newNetNS(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("creating the pod's network namespace: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the pod's network namespace at %s: %w", path, err)
	}
	if err := unix.Mount("", path, "", unix.MS_PRIVATE, ""); err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		return fmt.Errorf("making %s a private mount: %w", path, err)
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// IsNetNS tells whether path is a bound network namespace.
func IsNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// DeleteNetNS unbinds and removes the namespace file; missing is fine.
func DeleteNetNS(path string) error {
	if IsNetNS(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmounting the pod's netns %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the pod's netns %s: %w", path, err)
	}
	return nil
}
