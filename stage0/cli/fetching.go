//go:build !nofetch

package cli

// This file is the part of rkt that only rkt-fetch links: the fetchers
// (https, discovery, docker, OCI), the trust store and signature
// verification. rkt itself is built with -tags nofetch, where
// fetching_nofetch.go hands the command over to rkt-fetch instead (see
// handover.go), so that the libraries these bring (and their package
// initialisation, ~1 ms of every start) stay off the path of commands that
// only use the store and the pods.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"
	"golang.org/x/term"

	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/fetch"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
	"github.com/rktng/rkt/stage0/images"
)

// fetching says whether this binary links the fetchers (it is rkt-fetch).
const fetching = true

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

// trustKeys is runTrust's work once its flags are checked: it stores keys
// in the local configuration's trust store, after the user has reviewed
// their fingerprints (answered on a terminal only).
func trustKeys(g *globals, f trustFlags, keys []string) error {
	cfg, err := g.config()
	if err != nil {
		return err
	}
	client, err := fetch.NewHTTPClient(fetch.ClientOptions{InsecureTLS: g.insecure.TLS, AllowHTTP: f.InsecureAllowHTTP})
	if err != nil {
		return err
	}
	var in io.Reader
	if file, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		in = file
	}
	headers := fetch.AuthHeaders(cfg)
	added, err := g.keystore().Trust(context.Background(), trust.TrustOptions{
		Prefix:                f.Prefix,
		Root:                  f.Root,
		Keys:                  keys,
		SkipFingerprintReview: f.SkipFingerprintReview,
		TrustKeysFromHTTPS:    g.TrustKeysFromHTTPS,
		InsecureAllowHTTP:     f.InsecureAllowHTTP,
		InsecureSkipTLSVerify: g.insecure.TLS,
		HTTP:                  client,
		Header:                func(u *url.URL) http.Header { return headers(u) },
		Out:                   g.stderr,
		In:                    in,
	})
	for _, a := range added {
		fmt.Fprintf(g.stderr, "Added key for prefix %q at %q\n", a.Prefix, a.Path)
	}
	return err
}

// verifyImages is image verify's work: it prints who signed each image.
func verifyImages(g *globals, st *store.Store, sigs, args []string) error {
	f, err := g.newFetcher(st, "new")
	if err != nil {
		return err
	}
	for i, a := range args {
		sig := ""
		if i < len(sigs) {
			sig = sigs[i]
		}
		v, err := f.VerifyImage(context.Background(), a, sig)
		if err != nil {
			return err
		}
		if v.Signer == nil {
			fmt.Fprintf(g.stdout, "%s: %s: signature not checked (--insecure-options=image)\n", a, v.Name)
			continue
		}
		fmt.Fprintf(g.stdout, "%s: %s: signed by %s\n", a, v.Name, v.Signer)
	}
	return nil
}

// dockerStored finds an image fetched from docker:// under the name it was
// fetched by ("docker://127.0.0.1:5000/vasu/container:1.0", with or
// without the scheme): the store knows it by its converted appc name and
// its tag (or digest) as the version label.
func dockerStored(st *store.Store, arg string) (string, bool, error) {
	ref, err := docker.ParseReference(strings.TrimPrefix(arg, "docker://"))
	if err != nil {
		return "", false, nil
	}
	name, err := docker.ImageName(ref)
	if err != nil {
		return "", false, nil
	}
	version := ref.Tag()
	if version == "" {
		version = ref.Digest()
	}
	key, err := st.GetACI(name, types.Labels{{Name: "version", Value: version}})
	return key, err == nil, nil
}
