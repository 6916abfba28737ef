//go:build nofetch

package cli

// rkt's own binary links no fetcher: what needs one hands the command over
// to rkt-fetch (handover.go), which runs it again from the start. The
// functions here are fetching.go's, doing that.

import (
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/stage0/images"
)

// fetching says whether this binary links the fetchers (it is rkt-fetch).
const fetching = false

// useNetworkFetcher gives the resolver a fetcher that hands over: the
// images in the store (and unsigned files, with --insecure-options=image)
// are resolved here; anything else is rkt-fetch's.
func useNetworkFetcher(_ *globals, r *images.Resolver) error {
	r.Remote = handOverFetcher{}
	return nil
}

type handOverFetcher struct{}

func (handOverFetcher) FetchImage(ref, _ string) (string, error) {
	return "", &handOverError{what: "fetching image " + ref}
}

func trustKeys(*globals, trustFlags, []string) error {
	return &handOverError{what: "trusting keys"}
}

func verifyImages(*globals, *store.Store, []string, []string) error {
	return &handOverError{what: "verifying images"}
}

// dockerStored hands over: only rkt-fetch parses docker references as the
// registry client does. resolveStored asks here only when the argument is
// no image ID and the store knows it by no appc name.
func dockerStored(_ *store.Store, arg string) (string, bool, error) {
	return "", false, &handOverError{what: "looking up docker image " + arg}
}
