package boot

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage2"
)

// Files stage0 writes into the stage1 rootfs under the "stage0" modes.
const (
	Stage0Resolv = "etc/rkt-resolv.conf"
	Stage0Hosts  = "etc/rkt-hosts"
)

// nameFiles gives app its /etc/resolv.conf and /etc/hosts by the pod's
// modes: "host" and "stage0" bind a file over the app's (so later changes
// show through), "none" keeps the image's, "default" keeps the image's; for
// hosts, "default" writes one naming the pod's hostname (with the pod's IP
// when it has one) when the image has none. Without --dns the pod has no
// resolv.conf unless its network gave DNS servers (then the mode is
// "stage0") or the image has one, as in rkt.
func nameFiles(podDir string, a *app, mode stage1.DNSConfMode, hostname string, podIP net.IP) ([]bind, error) {
	var binds []bind
	rootfs := pod.Stage1RootfsPath(podDir)
	appRoot := pod.AppRootfsPath(podDir, a.name)
	for _, f := range []struct {
		mode, file, stage0 string
		generate           func() ([]byte, error)
	}{
		{mode.Resolv, "/etc/resolv.conf", Stage0Resolv, func() ([]byte, error) { return nil, os.ErrNotExist }},
		{mode.Hosts, "/etc/hosts", Stage0Hosts, func() ([]byte, error) { return defaultHosts(hostname, podIP), nil }},
	} {
		target, err := stage2.ResolveIn(appRoot, f.file)
		if err != nil {
			return nil, fmt.Errorf("app %s: %s: %w", a.name, f.file, err)
		}
		switch f.mode {
		case "none":
		case "host", "stage0":
			src := f.file
			if f.mode == "stage0" {
				src = filepath.Join(rootfs, f.stage0)
			}
			if err := regularFile(target); err != nil {
				return nil, fmt.Errorf("app %s: %s: %w", a.name, f.file, err)
			}
			rel, _ := filepath.Rel(rootfs, target)
			binds = append(binds, bind{source: src, target: "/" + rel, readOnly: true})
		default:
			if _, err := os.Stat(target); err == nil {
				continue
			}
			b, err := f.generate()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("app %s: generating %s: %w", a.name, f.file, err)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return nil, fmt.Errorf("app %s: writing %s: %w", a.name, f.file, err)
			}
			if err := os.WriteFile(target, b, 0o644); err != nil {
				return nil, fmt.Errorf("app %s: writing %s: %w", a.name, f.file, err)
			}
		}
	}
	return binds, nil
}

// regularFile makes p an existing regular file to bind over, replacing a
// dangling or absolute symlink left by the image.
func regularFile(p string) error {
	fi, err := os.Lstat(p)
	if err == nil && fi.Mode().IsRegular() {
		return nil
	}
	if err == nil {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, nil, 0o644)
}

// defaultHosts is the hosts file of a pod whose image has none.
func defaultHosts(hostname string, podIP net.IP) []byte {
	if podIP == nil {
		return []byte(fmt.Sprintf("127.0.0.1\tlocalhost %[1]s\n::1\tlocalhost %[1]s\n", hostname))
	}
	return []byte(fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", podIP, hostname))
}

// hostsWithPodIP adds the pod's hostname with its IP to the hosts file
// stage0 wrote from --hosts-entry, so that the pod can name itself.
func hostsWithPodIP(rootfs string, mode stage1.DNSConfMode, hostname string, podIP net.IP) error {
	if podIP == nil || mode.Hosts != "stage0" {
		return nil
	}
	p := filepath.Join(rootfs, Stage0Hosts)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("adding the pod's address to %s: %w", Stage0Hosts, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\t%s\n", podIP, hostname); err != nil {
		return fmt.Errorf("adding the pod's address to %s: %w", Stage0Hosts, err)
	}
	return nil
}
