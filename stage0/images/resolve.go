// Package images turns the image arguments of rkt's commands (paths,
// file:// URLs, image IDs, names with labels, remote references) into keys
// of the image store, fetching and verifying what is not there yet.
package images

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/imagearg"
	"github.com/rktng/rkt/aci/store"
)

// ErrUntrusted is wrapped when an image cannot be verified and
// --insecure-options=image was not given.
var ErrUntrusted = errors.New("image signature not verified")

// PullPolicy is aci/imagearg's: when the network is asked again.
type PullPolicy = imagearg.PullPolicy

// Pull policies, as rkt's --pull-policy.
const (
	PullNew    = imagearg.PullNew
	PullUpdate = imagearg.PullUpdate
	PullNever  = imagearg.PullNever
)

// ParsePullPolicy validates the --pull-policy value s.
func ParsePullPolicy(s string) (PullPolicy, error) {
	p, err := imagearg.ParsePullPolicy(s)
	if err != nil {
		return "", fmt.Errorf("--pull-policy: %w", err)
	}
	return p, nil
}

// Fetcher fetches what is not a local file or store reference: https,
// discovery names, docker, OCI archives, and verifies signed files. It is
// provided by aci/fetch, which applies the pull policy it was made with (or,
// in rkt's binary that links no fetcher, by a hand-over to rkt-fetch).
type Fetcher interface {
	FetchImage(ref, sigPath string) (key string, err error)
}

// Resolver resolves image arguments to store keys.
type Resolver struct {
	Store *store.Store
	// InsecureImage accepts images without a verified signature.
	InsecureImage bool
	// Remote handles everything that is not a file or already stored;
	// without one (the stage1 flags that name a path or a hash) the
	// resolver fetches nothing.
	Remote Fetcher
	Policy PullPolicy
	// NoRender: see store.ImportOptions.
	NoRender bool
}

// Resolve returns the store key of the image arg, importing it if needed.
// sigPath is the --signature given for it, if any. Arguments are
// classified by aci/imagearg, as the fetcher classifies them.
func (r *Resolver) Resolve(arg, sigPath string) (string, error) {
	ref, err := imagearg.Parse(arg)
	if err != nil {
		return "", err
	}
	switch ref.Kind {
	case imagearg.KindFile:
		if !r.InsecureImage {
			// Signed files go through the fetcher, which verifies them
			// against the trust store while it imports.
			if r.Remote == nil {
				return "", fmt.Errorf("image %s: no trust store to verify it against (use --insecure-options=image): %w", arg, ErrUntrusted)
			}
			return r.Remote.FetchImage(arg, sigPath)
		}
		return r.importFile(ref.Path)
	case imagearg.KindID:
		key, err := r.Store.ResolveKey(arg)
		if err != nil {
			return "", fmt.Errorf("image %q: %w", arg, err)
		}
		return key, nil
	case imagearg.KindName:
		if r.Policy != PullUpdate {
			key, err := r.byName(arg)
			if err == nil || !errors.Is(err, store.ErrNotFound) || r.Policy == PullNever || r.Remote == nil {
				return key, err
			}
		}
	}
	if r.Remote == nil {
		return "", fmt.Errorf("image %q: only a local file or an image in the store is accepted here", arg)
	}
	return r.Remote.FetchImage(arg, sigPath)
}

// importFile imports the ACI at path without verifying it (the caller
// checked --insecure-options=image).
func (r *Resolver) importFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opening image %s: %w", path, err)
	}
	defer f.Close()
	// A file already imported and unchanged since (same inode, size, mtime
	// and ctime, which no one can set back) is not hashed again.
	abs, _ := filepath.Abs(path)
	cacheURL := "file://" + abs
	ident, identErr := fileIdentity(f)
	if identErr == nil {
		if rem, err := r.Store.GetRemote(cacheURL); err == nil && rem.ETag == ident {
			if _, err := r.Store.Info(rem.BlobKey); err == nil {
				return rem.BlobKey, nil
			}
		}
	}
	info, err := r.Store.Import(f, store.ImportOptions{NoRender: r.NoRender, RequireDependencies: true})
	if err != nil {
		return "", fmt.Errorf("importing image %s: %w", path, err)
	}
	if identErr == nil {
		// Losing the cache record only costs a re-hash next time.
		_ = r.Store.SetRemote(&store.Remote{URL: cacheURL, ETag: ident, BlobKey: info.ID, DownloadTime: time.Now()})
	}
	return info.ID, nil
}

func fileIdentity(f *os.File) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("file:%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// byName finds a stored image by "name[:version][,label=value...]",
// defaulting os and arch to the host's as rkt does.
func (r *Resolver) byName(arg string) (string, error) {
	name, labels, err := ParseName(arg)
	if err != nil {
		return "", err
	}
	key, err := r.Store.GetACI(name, labels)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", arg, err)
	}
	return key, nil
}

// ParseName parses "name[:version][,label=value...]" (appc's app string).
func ParseName(arg string) (types.ACIdentifier, types.Labels, error) {
	app, err := parseAppString(arg)
	if err != nil {
		return "", nil, fmt.Errorf("image name %q: %w", arg, err)
	}
	return app.name, app.labels, nil
}

type appString struct {
	name   types.ACIdentifier
	labels types.Labels
}

func parseAppString(s string) (appString, error) {
	parts := strings.Split(s, ",")
	nameVer := parts[0]
	labels := map[types.ACIdentifier]string{}
	if i := strings.LastIndex(nameVer, ":"); i > 0 {
		labels["version"] = nameVer[i+1:]
		nameVer = nameVer[:i]
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return appString{}, fmt.Errorf("bad label %q (want name=value)", p)
		}
		if k == "version" {
			if _, dup := labels["version"]; dup {
				return appString{}, fmt.Errorf("version given twice")
			}
		}
		labels[types.ACIdentifier(k)] = v
	}
	name, err := types.NewACIdentifier(nameVer)
	if err != nil {
		return appString{}, err
	}
	if _, ok := labels["os"]; !ok {
		labels["os"] = runtime.GOOS
	}
	if _, ok := labels["arch"]; !ok {
		_, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
		if err == nil {
			labels["arch"] = arch
		}
	}
	l, err := types.LabelsFromMap(labels)
	if err != nil {
		return appString{}, err
	}
	return appString{name: *name, labels: l}, nil
}
