package fetch

import (
	"fmt"

	"github.com/rktng/rkt/aci/discovery"
	"github.com/rktng/rkt/aci/imagearg"
)

// Kind is what an image argument names (aci/imagearg's).
type Kind = imagearg.Kind

// The kinds of image argument.
const (
	KindFile       = imagearg.KindFile
	KindURL        = imagearg.KindURL
	KindName       = imagearg.KindName
	KindDocker     = imagearg.KindDocker
	KindID         = imagearg.KindID
	KindOCIArchive = imagearg.KindOCIArchive
	KindOCIDir     = imagearg.KindOCIDir
)

// Ref is a parsed image argument, with an appc name parsed for discovery.
type Ref struct {
	imagearg.Ref
	App *discovery.App // KindName
}

// ParseRef classifies s as imagearg.Parse does and parses an appc name
// for discovery.
func ParseRef(s string) (*Ref, error) {
	a, err := imagearg.Parse(s)
	if err != nil {
		return nil, err
	}
	r := &Ref{Ref: *a}
	if r.Kind == KindName {
		if r.App, err = discovery.ParseApp(s); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrBadReference)
		}
	}
	return r, nil
}
