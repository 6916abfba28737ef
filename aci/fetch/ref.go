package fetch

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/rktng/rkt/aci/discovery"
)

// Kind is what an image argument names.
type Kind int

const (
	KindFile       Kind = iota + 1 // a local file (path or file:// URL)
	KindURL                        // an http:// or https:// URL
	KindName                       // an appc name, found by discovery
	KindDocker                     // a docker registry reference
	KindID                         // an image ID in the store (sha512-...), or a prefix of one
	KindOCIArchive                 // an OCI image layout tarball (oci-archive:PATH[:REF])
	KindOCIDir                     // an OCI image layout directory (oci:DIR[:REF])
)

// Ref is a parsed image argument.
type Ref struct {
	Kind   Kind
	Raw    string         // as given
	Path   string         // KindFile: absolute path
	URL    *url.URL       // KindURL
	App    *discovery.App // KindName
	Docker string         // KindDocker: the reference without docker:// or docker:
	// KindOCIArchive, KindOCIDir: Path is the layout, OCIRef the image's
	// name in it ("" when it holds one image).
	OCIRef string
}

// ParseRef tells what an image argument names, as rkt did: a scheme decides
// when there is one; "sha512-..." is an image ID; otherwise an absolute
// path, an existing regular file, or a string with "./" or the .aci
// extension is a file, and the rest (often with ":version") is an appc
// name. A directory is not an image: its name is an appc name. OCI image
// layouts are named as podman and skopeo name them: oci-archive:PATH[:REF]
// for a tarball, oci:DIR[:REF] for a directory, PATH ending at the first
// colon. It is the one classifier of image arguments (stage0/images uses
// it too).
func ParseRef(s string) (*Ref, error) {
	r := &Ref{Raw: s}
	switch {
	case s == "":
		return nil, fmt.Errorf("empty image argument: %w", ErrBadReference)
	case strings.HasPrefix(s, "docker://"):
		r.Kind, r.Docker = KindDocker, strings.TrimPrefix(s, "docker://")
	case strings.HasPrefix(s, "docker:"):
		r.Kind, r.Docker = KindDocker, strings.TrimPrefix(s, "docker:")
	case strings.HasPrefix(s, "oci-archive:"):
		r.Kind = KindOCIArchive
		r.Path, r.OCIRef, _ = strings.Cut(strings.TrimPrefix(s, "oci-archive:"), ":")
	case strings.HasPrefix(s, "oci:"):
		r.Kind = KindOCIDir
		r.Path, r.OCIRef, _ = strings.Cut(strings.TrimPrefix(s, "oci:"), ":")
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("image URL %q: %v: %w", s, err, ErrBadReference)
		}
		switch u.Scheme {
		case "http", "https":
			r.Kind, r.URL = KindURL, u
		case "file":
			r.Kind, r.Path = KindFile, u.Path
		default:
			return nil, fmt.Errorf("image URL %q: unsupported scheme %q (file, http, https, docker, oci-archive, oci are): %w", s, u.Scheme, ErrBadReference)
		}
	case strings.HasPrefix(s, "sha512-"):
		r.Kind = KindID
	case looksLikePath(s):
		r.Kind, r.Path = KindFile, s
	default:
		app, err := discovery.ParseApp(s)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrBadReference)
		}
		r.Kind, r.App = KindName, app
	}
	if r.Kind == KindDocker && r.Docker == "" {
		return nil, fmt.Errorf("image %q: empty docker reference: %w", s, ErrBadReference)
	}
	if (r.Kind == KindOCIArchive || r.Kind == KindOCIDir) && r.Path == "" {
		return nil, fmt.Errorf("image %q: no path (oci-archive:PATH[:REF], oci:DIR[:REF]): %w", s, ErrBadReference)
	}
	if r.Kind == KindFile && r.Path == "" {
		return nil, fmt.Errorf("image URL %q: no path (file:///PATH): %w", s, ErrBadReference)
	}
	if r.Path != "" {
		abs, err := filepath.Abs(r.Path)
		if err != nil {
			return nil, fmt.Errorf("image path %q: %v: %w", s, err, ErrBadReference)
		}
		r.Path = abs
	}
	return r, nil
}

func looksLikePath(s string) bool {
	if filepath.IsAbs(s) {
		return true
	}
	if fi, err := os.Stat(s); err == nil && fi.Mode().IsRegular() {
		return true
	}
	if strings.ContainsRune(s, ':') {
		return false // "example.com/app:1.0"
	}
	return strings.Contains(s, "./") || strings.HasSuffix(s, ".aci")
}
