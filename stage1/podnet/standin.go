package podnet

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rktng/rkt/common/network"
)

// The reference plugins' DEL finds what to undo on the host by looking at
// the pod's side: ptp and bridge read the addresses of the pod's
// interface, delete it, then remove the IP masquerade rules made for those
// addresses (the iptables backend names its chain and rule by network,
// container ID and address). When the pod's namespace is gone by gc time
// they skip the masquerade and leave its chain and POSTROUTING jump on the
// host for good. The namespace goes with the mount namespace it was bound
// in: an rkt run under `unshare -m`, in a unit with PrivateMounts= or
// after a reboot; or the interface goes with a DEL that failed after
// deleting it. For those cases Teardown hands DEL a stand-in: a namespace
// of its own holding a veth of the pod's interface name with the addresses
// recorded at ADD, so that the plugin itself removes exactly what it made.

// standInPeer is the other end of the stand-in veth, whose only use is to
// exist: a veth is the one link kind every host running ptp can make
// (the dummy module may be missing).
const standInPeer = "rkt-standin"

func standInPath(podDir string) string { return filepath.Join(netDir(podDir), "standin-netns") }

// hasLink tells whether the namespace bound at path holds a link named
// ifName.
func hasLink(path, ifName string) (bool, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return false, fmt.Errorf("opening the pod's netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("netlink in the pod's netns: %w", err)
	}
	defer h.Close()
	if _, err := h.LinkByName(ifName); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s in the pod's netns: %w", ifName, err)
	}
	return true, nil
}

// recordedAddrs are the addresses the attachment gave the pod's interface
// ifName: from libcni's cached result of the ADD (every address, both
// families), else from net-info.json (the first IPv4 address).
func recordedAddrs(cni *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, infos []network.Info) []*net.IPNet {
	var out []*net.IPNet
	if cached, err := cni.GetNetworkListCachedResult(list, rt); err == nil && cached != nil {
		if res, err := types100.NewResultFromResult(cached); err == nil {
			for _, ipc := range res.IPs {
				if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(res.Interfaces) &&
					res.Interfaces[*ipc.Interface].Name != rt.IfName {
					continue // the host's side of the link
				}
				if ipc.Address.IP.IsGlobalUnicast() {
					a := ipc.Address
					out = append(out, &a)
				}
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, i := range infos {
		if i.IfName == rt.IfName && i.IP != nil && i.IP.IsGlobalUnicast() {
			mask := net.IPMask(i.Mask.To4())
			if mask == nil {
				mask = net.CIDRMask(32, 32)
			}
			out = append(out, &net.IPNet{IP: i.IP, Mask: mask})
		}
	}
	return out
}

// createStandIn makes the stand-in namespace at path: loopback and a veth
// named ifName holding addrs, as the pod's interface held them.
func createStandIn(path, ifName string, addrs []*net.IPNet) error {
	if err := DeleteNetNS(path); err != nil { // one left by a killed gc
		return err
	}
	if err := CreateNetNS(path); err != nil {
		return err
	}
	if err := fillStandIn(path, ifName, addrs); err != nil {
		_ = DeleteNetNS(path)
		return fmt.Errorf("stand-in for the pod's netns: %w", err)
	}
	return nil
}

func fillStandIn(path, ifName string, addrs []*net.IPNet) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	peer := standInPeer
	if peer == ifName {
		peer += "0"
	}
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifName}, PeerName: peer}); err != nil {
		return fmt.Errorf("adding %s: %w", ifName, err)
	}
	link, err := h.LinkByName(ifName)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: a}); err != nil && a.IP.To4() != nil {
			// (An IPv6 address fails where IPv6 is off; the IPv4
			// masquerade is still worth removing.)
			return fmt.Errorf("adding %s to %s: %w", a, ifName, err)
		}
	}
	return nil
}

// dropHostPeers deletes the host's end of a pod interface that was lost
// with the pod's namespace: ptp routes each of the pod's addresses to the
// host end of its veth, and that end (and the route) would otherwise stay
// until the kernel destroys the unbound namespace, which it does from a
// work queue once the last reference is gone: over a minute on a loaded
// host. Only a veth that a host route sends exactly one of addrs to (a
// bridge's ports carry no such route) is deleted, which takes its other
// end, in the lost namespace, with it.
func dropHostPeers(addrs []*net.IPNet) error {
	var errs []error
	for _, a := range addrs {
		// A /32 (or /128) of the address in its own family's length:
		// recorded IPv4 addresses may be in 16-byte form.
		ip, bits, family := a.IP, 8*net.IPv6len, netlink.FAMILY_V6
		if ip4 := a.IP.To4(); ip4 != nil {
			ip, bits, family = ip4, 8*net.IPv4len, netlink.FAMILY_V4
		}
		dst := &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
		routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		if err != nil {
			errs = append(errs, fmt.Errorf("looking up the host's route to %s: %w", a.IP, err))
			continue
		}
		for _, r := range routes {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil || l.Type() != "veth" {
				continue
			}
			var nf netlink.LinkNotFoundError
			if err := netlink.LinkDel(l); err != nil && !errors.As(err, &nf) {
				errs = append(errs, fmt.Errorf("deleting %s, the host's end of the pod's lost interface: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
