package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// fetchDocker pulls a docker image and imports it converted. An image
// pinned by digest is verified by that digest; a tag cannot be verified, so
// it needs --insecure-options=image, as in rkt.
//
// Two Remote records remember it: one under the reference as given (for
// the pull policy), one under registry/repository@manifest-digest, so that
// fetching a tag whose manifest has not changed downloads no layer.
func (f *Fetcher) fetchDocker(ctx context.Context, r *Ref) (string, error) {
	ref, err := docker.ParseReference(r.Docker)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrBadReference)
	}
	if !ref.Pinned() && !f.opts.Insecure.Image {
		return "", &trust.VerifyError{Name: "docker://" + r.Docker, Err: trust.ErrUnsigned,
			Detail: fmt.Sprintf("docker images carry no signature; pin a digest (docker://%s@sha256:...) to have it verified, or use --insecure-options=image", ref.Registry()+"/"+ref.Repository())}
	}
	refKey := "docker://" + ref.String()
	if rem, id := f.cachedRemote(refKey); id != "" && (f.opts.PullPolicy != PullUpdate || ref.Pinned()) {
		f.prog.Debug("Using image %s from the store for %s", id, rem.URL)
		return id, nil
	}
	if f.opts.PullPolicy == PullNever {
		return "", fmt.Errorf("image docker://%s: %w (--pull-policy=never)", r.Docker, ErrNotInStore)
	}
	if f.opts.Insecure.TLS {
		f.prog.Warn("warning: TLS certificate verification is disabled (--insecure-options=tls)")
	}
	opts := docker.Options{
		Transport: f.client.Transport,
		AllowHTTP: f.opts.Insecure.HTTP,
		WorkDir:   f.opts.DownloadDir,
		Progress:  layerProgress{f.prog},
		Credentials: func(reg string) (string, string, bool) {
			c, ok := f.opts.Config.DockerCredentials(reg)
			return c.User, c.Password, ok
		},
	}
	im, err := docker.Resolve(ctx, ref, opts)
	if err != nil {
		return "", err
	}
	contentKey := "docker://" + im.Canonical()
	if _, id := f.cachedRemote(contentKey); id != "" {
		f.prog.Info("Docker image %s is unchanged (%s), already converted as %s", r.Docker, im.Digest, id)
		f.setRemote(refKey, id, "", 0)
		return id, nil
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := im.WriteACI(ctx, pw)
		pw.CloseWithError(err)
		werr <- err
	}()
	info, err := f.opts.Store.Import(pr, store.ImportOptions{NoRender: f.opts.NoRender})
	pr.CloseWithError(errImportEnded)
	// The first failure is the one to report: a conversion error reaches
	// the store as a read error; a store error stops the conversion.
	if convErr := <-werr; convErr != nil && !errors.Is(convErr, errImportEnded) {
		return "", convErr
	}
	if err != nil {
		return "", fmt.Errorf("importing docker image %s: %w", r.Docker, err)
	}
	f.imported(info)
	f.prog.Info("Converted docker image %s (%s) as %s", r.Docker, im.Digest, info.ID)
	f.setRemote(contentKey, info.ID, "", 0)
	f.setRemote(refKey, info.ID, "", 0)
	return info.ID, nil
}

var errImportEnded = errors.New("the store stopped reading")

// layerProgress adapts progress to aci/docker's.
type layerProgress struct{ p *progress }

func (l layerProgress) StartLayer(label string, total int64) docker.LayerProgress {
	return l.p.Start(label, total, 0)
}
