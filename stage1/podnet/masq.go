package podnet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/network"
)

// Subnet masquerade: one IP masquerade rule for a network's whole subnet,
// installed when its first pod attaches and removed when its last one is
// detached, instead of ptp's chain and three rules per pod ("ipMasq").
// ptp's per-pod masquerade costs ten iptables executions at every pod
// start (README, Benchmarks); this costs none but for a network's first
// pod. A network asks for it with network.SubnetMasqKey (the built-in
// default network does) and "ipMasq": false; no reference plugin does
// this, so rkt does, as the README says.
//
// Pods holding the rule are counted as files in SubnetMasqDir/<network>/,
// one per attachment (container ID and interface), created before the
// plugins run and removed after their DEL, under an exclusive lock: the
// rule exists exactly while a file does. SubnetMasqDir is under /run, as
// the rules do not outlive a reboot either.

// SubnetMasqDir holds the attachment counts (a variable for tests).
var SubnetMasqDir = "/run/rkt/subnet-masq"

// subnetMasq is a network's subnet masquerade.
type subnetMasq struct {
	network string
	subnet  *net.IPNet
}

// subnetMasqOf tells whether the configuration list asks for a subnet
// masquerade, and of which subnet (host-local's "subnet" or first range).
func subnetMasqOf(name string, plugins [][]byte) (*subnetMasq, error) {
	if len(plugins) == 0 {
		return nil, nil
	}
	var c struct {
		SubnetMasq bool `json:"rktSubnetMasq"`
		IPAM       struct {
			Subnet string `json:"subnet"`
			Ranges [][]struct {
				Subnet string `json:"subnet"`
			} `json:"ranges"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(plugins[0], &c); err != nil || !c.SubnetMasq {
		return nil, nil
	}
	s := c.IPAM.Subnet
	if s == "" && len(c.IPAM.Ranges) > 0 && len(c.IPAM.Ranges[0]) > 0 {
		s = c.IPAM.Ranges[0][0].Subnet
	}
	_, subnet, err := net.ParseCIDR(s)
	if err != nil || subnet.IP.To4() == nil {
		return nil, fmt.Errorf("network %q: %s needs an IPv4 ipam subnet, not %q: %w", name, network.SubnetMasqKey, s, network.ErrBadConf)
	}
	return &subnetMasq{network: name, subnet: subnet}, nil
}

func (m *subnetMasq) dir() string { return filepath.Join(SubnetMasqDir, m.network) }

// chain is the rule's chain in the nat table: "RKT-MASQ-" and a hash of
// the network's name (iptables' 28-character limit).
func (m *subnetMasq) chain() string {
	h := sha256.Sum256([]byte(m.network))
	return "RKT-MASQ-" + hex.EncodeToString(h[:])[:16]
}

func (m *subnetMasq) jump() []string {
	return []string{"POSTROUTING", "-s", m.subnet.String(), "-m", "comment", "--comment",
		"rkt subnet masquerade: " + m.network, "-j", m.chain()}
}

// lock takes the network's count lock, exclusively.
func (m *subnetMasq) lock() (func(), error) {
	if err := os.MkdirAll(m.dir(), 0o755); err != nil {
		return nil, fmt.Errorf("subnet masquerade of %q: %w", m.network, err)
	}
	f, err := os.OpenFile(m.dir()+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("subnet masquerade of %q: %w", m.network, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the subnet masquerade of %q: %w", m.network, err)
	}
	return func() { f.Close() }, nil
}

func attachmentFile(uuid, ifName string) string { return uuid + "_" + ifName }

// acquire counts the attachment in, installing the rule if it is the
// network's first.
func (m *subnetMasq) acquire(uuid, ifName string) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	ents, err := os.ReadDir(m.dir())
	if err != nil {
		return err
	}
	// The rule before the count: killed in between, the next pod
	// installs it again (idempotent) instead of trusting a count.
	if len(ents) == 0 {
		if err := m.install(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(m.dir(), attachmentFile(uuid, ifName)), nil, 0o644); err != nil {
		return fmt.Errorf("subnet masquerade of %q: %w", m.network, err)
	}
	return nil
}

// release counts the attachment out, removing the rule if it was the
// network's last.
func (m *subnetMasq) release(uuid, ifName string) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f := filepath.Join(m.dir(), attachmentFile(uuid, ifName))
	if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Also when this one was not counted (killed between the rule and
	// the count): the rule goes with the last pod.
	ents, err := os.ReadDir(m.dir())
	if err != nil || len(ents) > 0 {
		return err
	}
	return m.uninstall()
}

// install makes the chain (pod-to-pod traffic in the subnet untouched,
// multicast untouched, the rest masqueraded: ptp's rules) and the jump to
// it. It is idempotent: a rule left by a killed rkt is not duplicated.
func (m *subnetMasq) install() error {
	c := m.chain()
	if err := iptables("-N", c); err != nil && !errors.Is(err, errIPTablesExists) {
		return err
	}
	for _, args := range [][]string{
		{"-F", c},
		{"-A", c, "-d", m.subnet.String(), "-j", "ACCEPT"},
		{"-A", c, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"},
	} {
		if err := iptables(args...); err != nil {
			return err
		}
	}
	if iptables(append([]string{"-C"}, m.jump()...)...) == nil {
		return nil
	}
	return iptables(append([]string{"-A"}, m.jump()...)...)
}

func (m *subnetMasq) uninstall() error {
	for iptables(append([]string{"-D"}, m.jump()...)...) == nil {
	}
	for _, args := range [][]string{{"-F", m.chain()}, {"-X", m.chain()}} {
		if err := iptables(args...); err != nil && !errors.Is(err, errIPTablesMissing) {
			return err
		}
	}
	return nil
}

var (
	errIPTablesExists  = errors.New("already exists")
	errIPTablesMissing = errors.New("does not exist")
)

// iptables runs iptables on the nat table, as the CNI plugins do (the
// host's, from PATH, waiting for the xtables lock).
func iptables(args ...string) error {
	args = append([]string{"-w", "-t", "nat"}, args...)
	b, err := exec.Command("iptables", args...).CombinedOutput()
	if err == nil {
		return nil
	}
	out := strings.TrimSpace(string(b))
	switch {
	case strings.Contains(out, "exists"):
		return fmt.Errorf("iptables %s: %s: %w", strings.Join(args, " "), out, errIPTablesExists)
	case strings.Contains(out, "No chain") || strings.Contains(out, "does not exist") || strings.Contains(out, "Bad rule"):
		return fmt.Errorf("iptables %s: %s: %w", strings.Join(args, " "), out, errIPTablesMissing)
	}
	return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
}
