package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// fileSource is a local ACI (a path or a file:// URL), verified with the
// signature given or <path>.asc. Nothing is cached: the file is read
// again, and the store finds it already has the image.
type fileSource struct {
	f       *Fetcher
	path    string
	sigPath string
}

func newFileSource(f *Fetcher, r *Ref, sigPath string) (source, error) {
	return &fileSource{f: f, path: r.Path, sigPath: sigPath}, nil
}

func (s *fileSource) cacheKey() (string, bool) { return "", false }

func (s *fileSource) expect() expectation { return expectation{what: s.path} }

func (s *fileSource) open(ctx context.Context, _ *store.Remote) (*stream, error) {
	s.f.warnInsecure()
	img, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", s.path, err)
	}
	return &stream{r: img, end: func(info *store.ImageInfo, _ bool) {
		img.Close()
		if info != nil {
			s.f.prog.Debug("Imported %s as %s", s.path, info.ID)
		}
	}}, nil
}

func (s *fileSource) signature(ctx context.Context) ([]byte, bool, error) {
	sigPath := s.sigPath
	if sigPath == "" {
		sigPath = s.path + ".asc"
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, &trust.VerifyError{Name: s.path, Err: trust.ErrUnsigned,
				Detail: fmt.Sprintf("no signature at %s (give one with --signature, or skip verification with --insecure-options=image)", sigPath)}
		}
		return nil, false, fmt.Errorf("reading signature %s: %w", sigPath, err)
	}
	return sig, false, nil
}
