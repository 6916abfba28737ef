package cli

import (
	"context"
	"path/filepath"

	"github.com/rktng/rkt/aci/fetch"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/stage0/images"
)

// keystore is rkt's trust store in the system and local config dirs.
func (g *globals) keystore() *trust.Keystore {
	return trust.New(g.SystemConfig, g.LocalConfig)
}

// newFetcher builds the aci/fetch fetcher for this invocation's flags.
func (g *globals) newFetcher(st *store.Store, policy images.PullPolicy) (*fetch.Fetcher, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	return fetch.New(fetch.Options{
		Store:    st,
		Keystore: g.keystore(),
		Config:   cfg,
		Insecure: fetch.InsecureOptions{
			Image: g.insecure.Image, TLS: g.insecure.TLS, HTTP: g.insecure.HTTP, PubKey: g.insecure.PubKey,
		},
		PullPolicy:         fetch.PullPolicy(policy),
		TrustKeysFromHTTPS: g.TrustKeysFromHTTPS,
		Progress:           g.stderr,
		Debug:              g.Debug,
		DownloadDir:        filepath.Join(g.Dir, "tmp", "fetch"),
		DockerLayers:       g.dockerLayers(),
		NoRender:           g.fetchOnly,
	})
}

// useNetworkFetcher plugs aci/fetch into a resolver: it verifies local
// files against the trust store and fetches everything remote.
func useNetworkFetcher(g *globals, r *images.Resolver) error {
	f, err := g.newFetcher(r.Store, r.Policy)
	if err != nil {
		return err
	}
	r.Remote = fetchAdapter{f}
	return nil
}

type fetchAdapter struct{ f *fetch.Fetcher }

func (a fetchAdapter) FetchImage(ref, sigPath string) (string, error) {
	return a.f.FetchImage(context.Background(), ref, sigPath)
}
