package cli

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/pflag"

	"github.com/rktng/rkt/stage0/prepare"
)

// podFlags are the flags of run and prepare that concern the whole pod.
// rkt stops parsing them at the first image; what follows an image are
// that image's app flags (appFlags), then optional "-- args" ended by "---".
type podFlags struct {
	Volumes        []string
	Mounts         []string
	Ports          []string
	SetEnv         []string
	SetEnvFile     string
	InheritEnv     bool
	NoOverlay      bool
	PrivateUsers   bool
	PullPolicy     string
	PodManifest    string
	UUIDFileSave   string
	Quiet          bool
	UserAnnotation []string
	UserLabel      []string
	Signatures     []string
	storeFlags
	isRun bool // run (networks checked before the pod is made), not prepare
	stage1Flags
	runtimeFlags
}

// runtimeFlags are the pod flags that run-prepared also takes: they go to
// the stage1 at run time, not into the pod manifest.
type runtimeFlags struct {
	Net         []string
	DNS         []string
	DNSSearch   []string
	DNSOpt      []string
	DNSDomain   string
	HostsEntry  []string
	Hostname    string
	IPC         string
	Interactive bool
	MDSRegister bool
}

func (r *runtimeFlags) add(fs *pflag.FlagSet) {
	fs.StringArrayVar(&r.Net, "net", nil, "configure the pod's networking: host, none, default, or a list of networks")
	fs.Lookup("net").NoOptDefVal = "default"
	fs.StringArrayVar(&r.DNS, "dns", nil, "name servers to write in /etc/resolv.conf (or host, none)")
	fs.StringArrayVar(&r.DNSSearch, "dns-search", nil, "DNS search domains")
	fs.StringArrayVar(&r.DNSOpt, "dns-opt", nil, "DNS options")
	fs.StringVar(&r.DNSDomain, "dns-domain", "", "DNS domain")
	fs.StringArrayVar(&r.HostsEntry, "hosts-entry", nil, "entries for /etc/hosts: IP=HOSTNAME, or host")
	fs.StringVar(&r.Hostname, "hostname", "", "pod's hostname (default rkt-$UUID)")
	fs.StringVar(&r.IPC, "ipc", "auto", "IPC namespace: auto, private or parent")
	fs.BoolVar(&r.Interactive, "interactive", false, "run the pod interactively (one app only)")
	fs.BoolVar(&r.MDSRegister, "mds-register", false, "register the pod with the metadata service")
}

type stage1Flags struct {
	Stage1Path, Stage1URL, Stage1Name, Stage1Hash, Stage1FromDir string
}

func (s *stage1Flags) add(fs *pflag.FlagSet) {
	fs.StringVar(&s.Stage1Path, "stage1-path", "", "path of the stage1 image")
	fs.StringVar(&s.Stage1URL, "stage1-url", "", "URL of the stage1 image")
	fs.StringVar(&s.Stage1Name, "stage1-name", "", "name of the stage1 image (fetched by discovery if not stored)")
	fs.StringVar(&s.Stage1Hash, "stage1-hash", "", "image ID of a stored stage1 image")
	fs.StringVar(&s.Stage1FromDir, "stage1-from-dir", "", "file name of a stage1 image in the stage1 images directory")
}

// podFlagSet makes the flag set of run (withRuntime) or prepare.
func (p *podFlags) flagSet(g *globals, name string, withRuntime bool) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	g.addFlags(fs)
	fs.StringArrayVar(&p.Volumes, "volume", nil, "volumes: NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL] or NAME,kind=empty[,mode=,uid=,gid=]")
	fs.StringArrayVar(&p.Ports, "port", nil, "ports to forward: NAME:[HOSTIP:]HOSTPORT")
	fs.StringArrayVar(&p.SetEnv, "set-env", nil, "environment variable NAME=VALUE for all apps")
	fs.StringVar(&p.SetEnvFile, "set-env-file", "", "file of NAME=VALUE lines for all apps")
	fs.BoolVar(&p.InheritEnv, "inherit-env", false, "apps inherit rkt's environment")
	fs.BoolVar(&p.NoOverlay, "no-overlay", false, "copy the images' rootfs instead of overlay mounts")
	fs.BoolVar(&p.PrivateUsers, "private-users", false, "run the pod in a user namespace")
	fs.StringVar(&p.PullPolicy, "pull-policy", "new", "when to fetch images: new, update or never")
	addDeprecatedStoreFlags(fs, &p.storeFlags)
	fs.StringVar(&p.PodManifest, "pod-manifest", "", "path of a pod manifest to use instead of images")
	fs.StringVar(&p.UUIDFileSave, "uuid-file-save", "", "write the pod's UUID to this file")
	p.stage1Flags.add(fs)
	if withRuntime {
		p.runtimeFlags.add(fs)
	} else {
		fs.BoolVar(&p.Quiet, "quiet", false, "print nothing but the UUID")
		fs.BoolVar(&p.Interactive, "interactive", false, "the pod will run interactively")
		fs.StringVar(&p.Hostname, "hostname", "", "pod's hostname (default rkt-$UUID)")
	}
	return fs
}

// toPrepareApp converts an app's flags for stage0/prepare.
func (a parsedApp) toPrepareApp(key string) (prepare.App, error) {
	f := a.flags
	out := prepare.App{
		Image: a.image, ImageKey: key, Name: f.Name, Exec: f.Exec, Args: a.args,
		WorkingDir: f.WorkingDir, User: f.User, Group: f.Group,
		SupplementaryGIDs: f.SupplementaryGIDs, ReadOnlyRootFS: f.ReadOnlyRootFS,
	}
	var err error
	if out.Mounts, err = parseMounts(f.Mounts); err != nil {
		return out, err
	}
	if out.Environment, err = parseEnv(f.Environment, "--environment"); err != nil {
		return out, err
	}
	for _, kv := range f.Annotations {
		k, v, err := splitKV(kv, "--annotation")
		if err != nil {
			return out, err
		}
		name, err := types.NewACIdentifier(k)
		if err != nil {
			return out, usageErrorf("--annotation %q: %v", kv, err)
		}
		out.Annotations.Set(*name, v)
	}
	if out.UserAnnotations, err = parseMap(f.UserAnnotations, "--user-annotation"); err != nil {
		return out, err
	}
	var ul map[string]string
	if ul, err = parseMap(f.UserLabels, "--user-label"); err != nil {
		return out, err
	}
	out.UserLabels = ul
	if out.Isolators, err = isolatorsFromFlags(f); err != nil {
		return out, fmt.Errorf("app of image %s: %w", a.image, err)
	}
	return out, nil
}

func splitKV(kv, flag string) (string, string, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return "", "", usageErrorf("%s %q: want NAME=VALUE", flag, kv)
	}
	return k, v, nil
}

func parseMap(kvs []string, flag string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, err := splitKV(kv, flag)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

func parseEnv(kvs []string, flag string) (types.Environment, error) {
	var env types.Environment
	for _, kv := range kvs {
		k, v, err := splitKV(kv, flag)
		if err != nil {
			return nil, err
		}
		if err := checkEnv(flag, k, v); err != nil {
			return nil, err
		}
		env.Set(k, v)
	}
	return env, nil
}

// readEnvFile reads --set-env-file: NAME=VALUE lines, # comments.
func readEnvFile(path string) (types.Environment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading --set-env-file: %w", err)
	}
	defer f.Close()
	var env types.Environment
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--set-env-file %s line %d: want NAME=VALUE", path, n)
		}
		if err := checkEnv(fmt.Sprintf("--set-env-file %s line %d:", path, n), k, v); err != nil {
			return nil, err
		}
		env.Set(k, v)
	}
	return env, sc.Err()
}

// parseMounts parses --mount volume=NAME,target=PATH.
func parseMounts(ss []string) ([]schema.Mount, error) {
	var out []schema.Mount
	for _, s := range ss {
		var m schema.Mount
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usageErrorf("--mount %q: want volume=NAME,target=PATH", s)
			}
			switch k {
			case "volume":
				n, err := types.NewACName(v)
				if err != nil {
					return nil, usageErrorf("--mount %q: volume name: %v", s, err)
				}
				m.Volume = *n
			case "target":
				m.Path = v
			default:
				return nil, usageErrorf("--mount %q: unknown key %q", s, k)
			}
		}
		if m.Volume == "" || m.Path == "" {
			return nil, usageErrorf("--mount %q: want volume=NAME,target=PATH", s)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseVolumes parses --volume with appc's syntax and checks host sources.
func parseVolumes(ss []string) ([]types.Volume, error) {
	var out []types.Volume
	for _, s := range ss {
		v, err := types.VolumeFromString(s)
		if err != nil {
			return nil, usageErrorf("--volume %q: %v", s, err)
		}
		if v.Kind == "host" {
			if _, err := os.Stat(v.Source); err != nil {
				return nil, fmt.Errorf("volume %q: host source %s: %w", v.Name, v.Source, err)
			}
		}
		out = append(out, *v)
	}
	return out, nil
}

// parsePorts parses --port NAME:[HOSTIP:]HOSTPORT.
func parsePorts(ss []string) ([]types.ExposedPort, error) {
	var out []types.ExposedPort
	for _, s := range ss {
		name, rest, ok := strings.Cut(s, ":")
		if !ok {
			return nil, usageErrorf("--port %q: want NAME:[HOSTIP:]HOSTPORT", s)
		}
		n, err := types.NewACName(name)
		if err != nil {
			return nil, usageErrorf("--port %q: %v", s, err)
		}
		var ep types.ExposedPort
		ep.Name = *n
		hostPort := rest
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			ip := strings.Trim(rest[:i], "[]")
			hostPort = rest[i+1:]
			ep.HostIP = parseIP(ip)
			if ep.HostIP == nil {
				return nil, usageErrorf("--port %q: bad host IP %q", s, ip)
			}
		}
		port, err := strconv.ParseUint(hostPort, 10, 16)
		if err != nil || port == 0 {
			return nil, usageErrorf("--port %q: bad host port %q", s, hostPort)
		}
		ep.HostPort = uint(port)
		out = append(out, ep)
	}
	return out, nil
}
