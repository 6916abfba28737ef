// Package network is the pod network contract shared by stage0 and the
// stage1-host: the --net list and its CNI_ARGS, the network configurations
// found in net.d directories (rkt's two built-in networks included), the
// names of the network files in a pod directory and net-info.json, which
// stage0 reads for list and status.
package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Special network names of --net.
const (
	Default           = "default"
	DefaultRestricted = "default-restricted"
	Host              = "host"
	None              = "none"
	All               = "all"
)

// Directories and files of the contract.
const (
	// ConfDir is the directory of network configurations under each of
	// rkt's configuration directories (system, local).
	ConfDir = "net.d"
	// PodNetDir (in the pod directory) holds a copy of each network
	// configuration being attached and its runtime record, written before
	// the network is added: gc deletes what it lists.
	PodNetDir = "net"
	// BuiltinPluginDir (in the stage1 rootfs) holds the CNI plugins the
	// stage1 ships.
	BuiltinPluginDir = "usr/lib/rkt/plugins/net"
	// UserPluginDir is where users put their own CNI plugins on the host,
	// searched after the stage1's.
	UserPluginDir = "/usr/lib/rkt/plugins/net"
	// IfNamePattern names the pod's interfaces in attachment order.
	IfNamePattern = "eth%d"
	// SubnetMasqKey, true in a network's (first plugin's) configuration,
	// asks rkt for one IP masquerade rule for the network's IPAM subnet,
	// held while any pod is attached, instead of the plugin's rules per
	// pod ("ipMasq"). The plugins ignore it.
	SubnetMasqKey = "rktSubnetMasq"
)

// Sentinel errors for the categories of refusal.
var (
	// ErrBadNetList is wrapped for a malformed --net value.
	ErrBadNetList = errors.New("bad --net value")
	// ErrUnknownNetwork is wrapped when a named network has no
	// configuration.
	ErrUnknownNetwork = errors.New("network not found")
	// ErrBadConf is wrapped for an unreadable network configuration.
	ErrBadConf = errors.New("bad network configuration")
)

// Request is one network of --net with its arguments ("K=V;K2=V2").
type Request struct {
	Name string
	Args string
}

// List is the pod's --net list, in command-line order, each name once.
type List []Request

// ParseList parses --net values, each a comma-separated list of
// NAME[:K=V;K2=V2]. No value means the default network.
func ParseList(values []string) (List, error) {
	var l List
	seen := map[string]bool{}
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			name, args, hasArgs := strings.Cut(s, ":")
			switch {
			case name == "":
				return nil, fmt.Errorf("--net=%s: empty network name: %w", v, ErrBadNetList)
			case seen[name]:
				return nil, fmt.Errorf("--net=%s: network %q given twice: %w", v, name, ErrBadNetList)
			case hasArgs && (name == Host || name == None || name == All):
				return nil, fmt.Errorf("--net=%s: network %q takes no arguments: %w", v, name, ErrBadNetList)
			case strings.Contains(args, ":"):
				return nil, fmt.Errorf("--net=%s: network %q: bad arguments %q: %w", v, name, args, ErrBadNetList)
			}
			if hasArgs {
				if _, err := ParseArgs(args); err != nil {
					return nil, fmt.Errorf("--net=%s: network %q: %w", v, name, err)
				}
			}
			if hasControl(name) {
				return nil, fmt.Errorf("--net: network name %q holds a control character: %w", name, ErrBadNetList)
			}
			seen[name] = true
			l = append(l, Request{Name: name, Args: args})
		}
	}
	if len(l) == 0 {
		l = List{{Name: Default}}
	}
	if len(l) > 1 && (l.Has(Host) || l.Has(None)) {
		special := Host
		if l.Has(None) {
			special = None
		}
		return nil, fmt.Errorf("--net=%s cannot be combined with other networks (%s): %w", special, strings.Join(l.Strings(), ","), ErrBadNetList)
	}
	return l, nil
}

// Has tells whether the list names the network.
func (l List) Has(name string) bool {
	for _, r := range l {
		if r.Name == name {
			return true
		}
	}
	return false
}

// Host tells whether the pod shares the host's network.
func (l List) Host() bool { return l.Has(Host) }

// None tells whether the pod gets loopback only.
func (l List) None() bool { return l.Has(None) }

// Strings renders the list as --net values (NAME or NAME:ARGS).
func (l List) Strings() []string {
	var out []string
	for _, r := range l {
		if r.Args == "" {
			out = append(out, r.Name)
		} else {
			out = append(out, r.Name+":"+r.Args)
		}
	}
	return out
}

func (l List) args(name string) string {
	for _, r := range l {
		if r.Name == name {
			return r.Args
		}
	}
	return ""
}

// ParseArgs splits CNI arguments "K=V;K2=V2" into pairs.
func ParseArgs(s string) ([][2]string, error) {
	var out [][2]string
	if s == "" {
		return nil, nil
	}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q: want K=V: %w", kv, ErrBadNetList)
		}
		if hasControl(kv) {
			return nil, fmt.Errorf("argument %q holds a control character: %w", kv, ErrBadNetList)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// Conf is a network configuration file.
type Conf struct {
	Name  string
	Type  string // the plugin type; "" for a configuration list
	File  string // path of the file it was read from (base name for built-ins)
	Bytes []byte
}

// Selected is a network to attach: its configuration and the --net
// arguments for it.
type Selected struct {
	Conf
	Args string
}

// The built-in networks, as rkt's stage1 shipped them in etc/rkt/net.d,
// but for the default network's masquerade: one rule for the subnet
// (SubnetMasqKey) where rkt's had ptp make one per pod.
// They are used unless a net.d directory defines a network of the same name.
var builtins = []Conf{
	{Name: Default, Type: "ptp", File: "99-default.conf", Bytes: []byte(`{
	"cniVersion": "0.4.0",
	"name": "default",
	"type": "ptp",
	"ipMasq": false,
	"rktSubnetMasq": true,
	"ipam": {
		"type": "host-local",
		"subnet": "172.16.28.0/24",
		"routes": [{"dst": "0.0.0.0/0"}]
	}
}
`)},
	{Name: DefaultRestricted, Type: "ptp", File: "99-default-restricted.conf", Bytes: []byte(`{
	"cniVersion": "0.4.0",
	"name": "default-restricted",
	"type": "ptp",
	"ipMasq": false,
	"ipam": {
		"type": "host-local",
		"subnet": "172.31.0.0/16"
	}
}
`)},
}

// LoadConfs reads the built-in networks, then the *.conf and *.conflist
// files of each directory in dirs (missing ones are skipped); a later
// directory's network replaces an earlier one of the same name, and within
// a directory the first file in lexical order wins, as in rkt.
func LoadConfs(dirs []string) (map[string]Conf, error) {
	confs := map[string]Conf{}
	for _, c := range builtins {
		confs[c.Name] = c
	}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading network configurations in %s: %w", dir, err)
		}
		here := map[string]bool{}
		for _, e := range ents { // ReadDir sorts by name
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".conf") || strings.HasSuffix(e.Name(), ".conflist")) {
				continue
			}
			c, err := readConf(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			if here[c.Name] {
				continue
			}
			here[c.Name] = true
			confs[c.Name] = c
		}
	}
	return confs, nil
}

func readConf(path string) (Conf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Conf{}, fmt.Errorf("reading network configuration: %w", err)
	}
	var head struct {
		Name    string            `json:"name"`
		Type    string            `json:"type"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Conf{}, fmt.Errorf("network configuration %s: %v: %w", path, err, ErrBadConf)
	}
	if head.Name == "" || hasControl(head.Name) || strings.ContainsAny(head.Name, ",:/") {
		return Conf{}, fmt.Errorf("network configuration %s: bad or missing name %q: %w", path, head.Name, ErrBadConf)
	}
	if head.Type == "" && len(head.Plugins) == 0 {
		return Conf{}, fmt.Errorf("network configuration %s: neither type nor plugins: %w", path, ErrBadConf)
	}
	return Conf{Name: head.Name, Type: head.Type, File: path, Bytes: b}, nil
}

// Select picks the networks of l from confs, ordered by file name (rkt's
// lexical order). "all" selects every network. An unknown name is refused,
// naming it.
func Select(confs map[string]Conf, l List) ([]Selected, error) {
	if l.Host() || l.None() {
		return nil, nil
	}
	var out []Selected
	var missing []string
	if l.Has(All) {
		for _, c := range confs {
			out = append(out, Selected{Conf: c, Args: l.args(c.Name)})
		}
	}
	for _, r := range l {
		if r.Name == All {
			continue
		}
		c, ok := confs[r.Name]
		if !ok {
			missing = append(missing, r.Name)
			continue
		}
		if !l.Has(All) {
			out = append(out, Selected{Conf: c, Args: r.Args})
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("network %s: no configuration in net.d: %w", strings.Join(missing, ", "), ErrUnknownNetwork)
	}
	sort.Slice(out, func(i, j int) bool {
		bi, bj := filepath.Base(out[i].File), filepath.Base(out[j].File)
		if bi != bj {
			return bi < bj
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Info is one attached network in net-info.json, in rkt's shape.
type Info struct {
	NetName    string `json:"netName"`
	NetConf    string `json:"netConf"`
	PluginPath string `json:"pluginPath"`
	IfName     string `json:"ifName"`
	IP         net.IP `json:"ip"`
	Args       string `json:"args"`
	Mask       net.IP `json:"mask"`
	// HostIP is the host's address on this network (the gateway), where
	// the pod reaches the metadata service. Not in rkt's file.
	HostIP net.IP `json:"-"`
}

// InfoFile is net-info.json in the pod directory.
const InfoFile = "net-info.json"

// SaveInfo writes net-info.json into podDir atomically: a reader sees no
// file or the whole file.
func SaveInfo(podDir string, infos []Info) error {
	if infos == nil {
		infos = []Info{}
	}
	b, err := json.Marshal(infos)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", InfoFile, err)
	}
	tmp := filepath.Join(podDir, "."+InfoFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", InfoFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(podDir, InfoFile)); err != nil {
		return fmt.Errorf("writing %s: %w", InfoFile, err)
	}
	return nil
}

// LoadInfo reads net-info.json of podDir; it wraps os.ErrNotExist when the
// pod has none (yet).
func LoadInfo(podDir string) ([]Info, error) {
	b, err := os.ReadFile(filepath.Join(podDir, InfoFile))
	if err != nil {
		return nil, err
	}
	var infos []Info
	if err := json.Unmarshal(b, &infos); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", InfoFile, podDir, err)
	}
	return infos, nil
}
