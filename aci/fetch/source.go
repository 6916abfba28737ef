package fetch

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rktng/rkt/aci/store"
)

// A source is one scheme's way to an image. fetchSource drives every
// source the same way: the pull policy against the store's record of an
// earlier fetch, the stream, the signature, and the verified import, which
// lists the image only once it passed (see importVerified).
//
// A new scheme is a file with a constructor (which refuses what the
// options forbid before anything is read) and a source, one Kind in
// ref.go and one line in sources below.
type source interface {
	// cacheKey is the store's Remote record of the image, "" when the
	// source keeps none (a local file is read again). immutable: what
	// the key names cannot change (a digest), so a stored copy serves
	// even under --pull-policy=update.
	cacheKey() (key string, immutable bool)
	// expect is what the image must be: its name and labels, and what
	// messages call it.
	expect() expectation
	// open opens the image's ACI stream. rem is the record of an earlier
	// fetch of cacheKey (nil if none), for revalidation.
	open(ctx context.Context, rem *store.Remote) (*stream, error)
	// signature returns the stream's detached signature for the trust
	// keystore, or verified when the source checks the content itself
	// (a docker digest). It is asked only when verification is on.
	signature(ctx context.Context) (sig []byte, verified bool, err error)
}

// stream is an opened source.
type stream struct {
	r io.Reader
	// current, when set, is the stored image the source found to be
	// still current (HTTP 304, an unchanged manifest digest): nothing is
	// read and current is the result.
	current string
	// etag and maxAge go into the cacheKey's record.
	etag   string
	maxAge int
	// end releases the stream: info is the imported image, or nil when
	// the fetch failed; keep asks to keep what a retry can resume.
	end func(info *store.ImageInfo, keep bool)
}

// newSource makes the source of a parsed reference, refusing what the
// fetcher's options forbid.
type newSource func(f *Fetcher, r *Ref, sigPath string) (source, error)

// sources are the schemes fetched through fetchSource. KindName (appc
// discovery, whose mirrors are URL sources) and KindID (the store only)
// are handled apart.
var sources = map[Kind]newSource{
	KindFile:       newFileSource,
	KindURL:        newURLSource,
	KindDocker:     newDockerSource,
	KindOCIArchive: newOCISource,
	KindOCIDir:     newOCISource,
}

// fetchSource gets one source's image into the store and returns its ID.
func (f *Fetcher) fetchSource(ctx context.Context, src source) (string, error) {
	key, immutable := src.cacheKey()
	exp := src.expect()
	var rem *store.Remote
	if key != "" {
		r, cached := f.cachedRemote(key)
		if cached != "" {
			switch {
			case f.opts.PullPolicy != PullUpdate || immutable:
				f.prog.Debug("Using image %s from the store for %s", cached, key)
				return cached, nil
			case r.CacheMaxAge > 0 && time.Since(r.DownloadTime) < time.Duration(r.CacheMaxAge)*time.Second:
				f.prog.Debug("Image for %s is fresh for %ds more, not fetching", key, r.CacheMaxAge-int(time.Since(r.DownloadTime).Seconds()))
				return cached, nil
			}
			rem = r
		}
		if f.opts.PullPolicy == PullNever {
			return "", fmt.Errorf("image %s: %w (--pull-policy=never)", exp.what, ErrNotInStore)
		}
	}
	st, err := src.open(ctx, rem)
	if err != nil {
		return "", err
	}
	if st.current != "" {
		st.end(nil, false)
		if key != "" {
			f.setRemote(key, st.current, st.etag, st.maxAge)
		}
		return st.current, nil
	}
	var sig []byte
	verified := f.opts.Insecure.Image
	if !verified {
		if sig, verified, err = src.signature(ctx); err != nil {
			st.end(nil, true)
			return "", err
		}
	}
	info, failedSource, err := f.importVerified(st.r, sig, verified, exp)
	if err != nil {
		st.end(nil, failedSource)
		return "", err
	}
	st.end(&info, false)
	if key != "" {
		f.setRemote(key, info.ID, st.etag, st.maxAge)
	}
	return info.ID, nil
}
