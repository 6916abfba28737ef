package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/discovery"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// withDefaults adds this machine's os and arch labels when absent, as rkt
// did, so that discovery templates and the store find the right build.
func (f *Fetcher) withDefaults(app *discovery.App) *discovery.App {
	a := app.Copy()
	if _, ok := a.Labels["os"]; !ok {
		a.Labels["os"] = f.opts.OS
	}
	if _, ok := a.Labels["arch"]; !ok {
		a.Labels["arch"] = f.opts.Arch
	}
	return a
}

func appString(app *discovery.App) string {
	s := app.Name.String()
	if v, ok := app.Labels["version"]; ok {
		s += ":" + v
	}
	var rest []string
	for k, v := range app.Labels {
		if k != "version" {
			rest = append(rest, k.String()+"="+v)
		}
	}
	sort.Strings(rest)
	if len(rest) > 0 {
		s += "," + strings.Join(rest, ",")
	}
	return s
}

func (f *Fetcher) fetchApp(ctx context.Context, asked *discovery.App, what, sigPath string) (string, error) {
	app := f.withDefaults(asked)
	if err := types.IsValidOSArch(app.Labels, types.ValidOSArch); err != nil {
		return "", fmt.Errorf("image %s: %v: %w", what, err, ErrBadReference)
	}
	labels, err := types.LabelsFromMap(app.Labels)
	if err != nil {
		return "", fmt.Errorf("image %s: %v: %w", what, err, ErrBadReference)
	}
	if f.opts.PullPolicy != PullUpdate {
		id, err := f.opts.Store.GetACI(app.Name, labels)
		if err == nil {
			f.prog.Debug("Using image %s from the store for %s", id, what)
			return id, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("looking up %s in the store: %w", what, err)
		}
	}
	if f.opts.PullPolicy == PullNever {
		return "", fmt.Errorf("image %s: %w (--pull-policy=never)", what, ErrNotInStore)
	}
	dc := &discovery.Client{HTTP: f.client, Header: f.Header, InsecureHTTP: f.opts.Insecure.HTTP}
	res, err := dc.DiscoverImage(ctx, app)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", what, err)
	}
	for _, a := range res.Attempts {
		f.prog.Debug("Discovery: %s: %s", a.URL, a.Result)
	}
	f.maybeTrustDiscoveredKeys(ctx, dc, app)

	_, hasVersion := asked.Labels["version"]
	exp := expectation{what: appString(app), name: &app.Name, labels: app.Labels, latest: !hasVersion}
	var errs []error
	for _, ep := range res.Endpoints {
		u, err := url.Parse(ep.ACI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			errs = append(errs, fmt.Errorf("endpoint %q: not an http(s) URL", ep.ACI))
			continue
		}
		if u.Scheme == "http" && !f.opts.Insecure.HTTP {
			errs = append(errs, fmt.Errorf("endpoint %s: plain HTTP: %w (use --insecure-options=http)", u, ErrInsecure))
			continue
		}
		sig := sigPath
		if sig == "" {
			sig = ep.ASC
		}
		f.prog.Debug("Fetching %s from %s (discovered at %s)", what, u, res.Page)
		src, err := f.urlSource(u, sig, exp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id, err := f.fetchSource(ctx, src)
		if err == nil {
			return id, nil
		}
		// A refused image is final: another mirror of it is no better.
		var ve *trust.VerifyError
		if errors.As(err, &ve) || errors.Is(err, ErrMismatch) || ctx.Err() != nil {
			return "", err
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("fetching %s: every discovered endpoint failed: %w", what, errors.Join(errs...))
}

// maybeTrustDiscoveredKeys implements --trust-keys-from-https: when no key
// is trusted for the image's name yet, the keys the name's prefix announces
// over verified HTTPS are trusted for it. Without the flag the fetch will
// be refused with advice to run rkt trust.
func (f *Fetcher) maybeTrustDiscoveredKeys(ctx context.Context, dc *discovery.Client, app *discovery.App) {
	if f.opts.Insecure.Image || f.opts.Keystore == nil || !f.opts.TrustKeysFromHTTPS {
		return
	}
	kr, err := f.opts.Keystore.Keyring(app.Name)
	if err != nil || len(kr.Keys) > 0 {
		return
	}
	if f.opts.Insecure.TLS && !f.opts.Insecure.PubKey {
		f.prog.Warn("warning: not trusting discovered keys for %s: TLS verification is off (add --insecure-options=pubkey to accept that)", app.Name)
		return
	}
	added, err := f.opts.Keystore.Trust(ctx, trust.TrustOptions{
		Prefix:                app.Name.String(),
		HTTP:                  f.client,
		Header:                f.Header,
		InsecureAllowHTTP:     f.opts.Insecure.HTTP && f.opts.Insecure.PubKey,
		InsecureSkipTLSVerify: f.opts.Insecure.TLS,
		SkipFingerprintReview: f.opts.Insecure.PubKey,
		TrustKeysFromHTTPS:    true,
		Out:                   progressWriter{f.prog},
	})
	if err != nil {
		f.prog.Warn("warning: trusting keys discovered for %s: %v", app.Name, err)
		return
	}
	for _, a := range added {
		f.prog.Info("Trusted key %s for prefix %s (from %s)", trust.FormatFingerprint(a.Fingerprint), a.Prefix, a.Location)
	}
}

// progressWriter sends Trust's review text to the progress output.
type progressWriter struct{ p *progress }

func (w progressWriter) Write(b []byte) (int, error) {
	if w.p != nil && w.p.w != nil {
		w.p.mu.Lock()
		defer w.p.mu.Unlock()
		return w.p.w.Write(b)
	}
	return len(b), nil
}

// fetchDeps fetches the dependencies of image id, recursively, by name.
func (f *Fetcher) fetchDeps(ctx context.Context, id string) error {
	seen := map[string]bool{}
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		m, err := f.opts.Store.GetImageManifest(cur)
		if err != nil {
			return fmt.Errorf("reading manifest of %s: %w", cur, err)
		}
		for _, dep := range m.Dependencies {
			app, err := discovery.AppFromDependency(dep)
			if err != nil {
				return fmt.Errorf("dependency %s of %s: %w", dep.ImageName, m.Name, err)
			}
			key := appString(app)
			if dep.ImageID != nil {
				key += "@" + dep.ImageID.String()
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			depID, err := f.fetchDep(ctx, dep, app, m.Name.String())
			if err != nil {
				return err
			}
			queue = append(queue, depID)
		}
	}
	return nil
}

func (f *Fetcher) fetchDep(ctx context.Context, dep types.Dependency, app *discovery.App, parent string) (string, error) {
	what := fmt.Sprintf("dependency %s of %s", appString(app), parent)
	if dep.ImageID != nil {
		if id, err := f.opts.Store.ResolveKey(dep.ImageID.String()); err == nil {
			return id, nil
		}
	}
	f.prog.Debug("Fetching %s", what)
	id, err := f.fetchApp(ctx, app, what, "")
	if err != nil {
		return "", err
	}
	if dep.ImageID != nil && !strings.HasPrefix(id, dep.ImageID.String()) {
		return "", fmt.Errorf("%s: fetched image %s, but the manifest pins %s: %w", what, id, dep.ImageID, ErrMismatch)
	}
	return id, nil
}
