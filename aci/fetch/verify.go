package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// Verified is an image that passed verification.
type Verified struct {
	Name     string
	Manifest *schema.ImageManifest
	// Signer is nil when verification was waived (--insecure-options=image).
	Signer *trust.Signer
}

// VerifyImage is `rkt image verify`: it checks one image argument (a
// file, a URL or an appc name, as FetchImage takes them) exactly as a fetch
// would, signature, name and labels, but stores nothing and ignores the
// store's copies and the pull policy. Dependencies are not followed.
func (f *Fetcher) VerifyImage(ctx context.Context, ref string, sigPath string) (*Verified, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindDocker:
		return nil, fmt.Errorf("verifying %s: docker images carry no signature; a digest reference is verified when fetched: %w", ref, ErrBadReference)
	case KindOCIArchive, KindOCIDir:
		return nil, fmt.Errorf("verifying %s: OCI image layouts carry no signature rkt can check: %w", ref, ErrBadReference)
	case KindID:
		return nil, fmt.Errorf("verifying %s: an image ID names what is in the store, which was verified when fetched: %w", ref, ErrBadReference)
	}
	v := *f
	v.opts.Store = verifyOnly{f.opts.Store}
	v.opts.PullPolicy = PullUpdate
	var got *Verified
	v.onVerified = func(x *Verified) { got = x }
	if r.Kind == KindName {
		_, err = v.fetchApp(ctx, r.App, r.Raw, sigPath)
	} else {
		var src source
		if src, err = v.source(r, sigPath); err == nil {
			_, err = v.fetchSource(ctx, src)
		}
	}
	if err != nil {
		return nil, err
	}
	if got == nil {
		return nil, fmt.Errorf("verifying %s: no image was checked", ref)
	}
	return got, nil
}

// verifyOnly is a store that reads images and keeps nothing, and has
// nothing cached, so that every check runs.
type verifyOnly struct{ Store }

func (verifyOnly) Import(r io.Reader, _ store.ImportOptions) (store.ImageInfo, error) {
	n, err := io.Copy(io.Discard, r)
	return store.ImageInfo{ID: "(not stored)", Size: n}, err
}

func (verifyOnly) GetACI(name types.ACIdentifier, _ types.Labels) (string, error) {
	return "", fmt.Errorf("%s: %w", name, store.ErrNotFound)
}

func (verifyOnly) GetRemote(u string) (*store.Remote, error) {
	return nil, fmt.Errorf("%s: %w", u, store.ErrNotFound)
}

func (verifyOnly) SetRemote(*store.Remote) error { return nil }

var errNotStored = errors.New("not stored")

func (verifyOnly) Info(key string) (store.ImageInfo, error) {
	return store.ImageInfo{}, fmt.Errorf("%s: %w", key, errNotStored)
}
