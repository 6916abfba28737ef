// Package imagearg tells what rkt's image arguments name (a file, a URL, an
// appc name, a docker reference, an image ID, an OCI layout) and when the
// network is asked for them (the pull policy). It is apart from aci/fetch
// so that the run path classifies its arguments without linking the
// fetchers: rkt's own binary has none (see stage0/cli's fetching.go).
package imagearg

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrBadReference: the image argument cannot be parsed.
var ErrBadReference = errors.New("bad image reference")

// PullPolicy says when to use the network (rkt's --pull-policy).
type PullPolicy string

const (
	// PullNew uses an image already in the store, fetching only when
	// there is none (the default of run and prepare).
	PullNew PullPolicy = "new"
	// PullUpdate asks the remote again, revalidating with ETag and
	// honouring Cache-Control max-age (the default of fetch).
	PullUpdate PullPolicy = "update"
	// PullNever uses the store only.
	PullNever PullPolicy = "never"
)

// ParsePullPolicy parses the flag value.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case PullNew, PullUpdate, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("unknown pull policy %q (known: new, update, never)", s)
}

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
	Raw    string   // as given
	Path   string   // KindFile: absolute path
	URL    *url.URL // KindURL
	Docker string   // KindDocker: the reference without docker:// or docker:
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
// colon. It is the one classifier of image arguments: aci/fetch and
// stage0/images both use it. A name is not validated here (aci/fetch
// parses it for discovery, stage0/images as a store lookup).
func Parse(s string) (*Ref, error) {
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
		r.Kind = KindName
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
