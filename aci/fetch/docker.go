package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rktng/rkt/aci/docker"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// dockerSource pulls a docker image and imports it converted. An image
// pinned by digest is verified by that digest; a tag cannot be verified, so
// it needs --insecure-options=image, as in rkt.
//
// Two Remote records remember it: one under the reference as given (for
// the pull policy), one under registry/repository@manifest-digest, so that
// fetching a tag whose manifest has not changed downloads no layer.
type dockerSource struct {
	f   *Fetcher
	raw string // as given, without docker://
	ref *docker.Reference
}

func newDockerSource(f *Fetcher, r *Ref, _ string) (source, error) {
	ref, err := docker.ParseReference(r.Docker)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrBadReference)
	}
	if !ref.Pinned() && !f.opts.Insecure.Image {
		return nil, &trust.VerifyError{Name: "docker://" + r.Docker, Err: trust.ErrUnsigned,
			Detail: fmt.Sprintf("docker images carry no signature; pin a digest (docker://%s@sha256:...) to have it verified, or use --insecure-options=image", ref.Registry()+"/"+ref.Repository())}
	}
	return &dockerSource{f: f, raw: r.Docker, ref: ref}, nil
}

func (s *dockerSource) cacheKey() (string, bool) { return "docker://" + s.ref.String(), s.ref.Pinned() }

func (s *dockerSource) expect() expectation {
	return expectation{what: "docker://" + s.raw}
}

// signature: a pinned image is checked against its digest as its layers
// arrive; an unpinned one was refused by newDockerSource.
func (s *dockerSource) signature(context.Context) ([]byte, bool, error) { return nil, true, nil }

func (s *dockerSource) open(ctx context.Context, _ *store.Remote) (*stream, error) {
	f := s.f
	if f.opts.Insecure.TLS {
		f.prog.Warn("warning: TLS certificate verification is disabled (--insecure-options=tls)")
	}
	opts := docker.Options{
		Transport: f.client.Transport,
		AllowHTTP: f.opts.Insecure.HTTP,
		WorkDir:   f.opts.DownloadDir,
		Layers:    f.opts.DockerLayers,
		Progress:  layerProgress{f.prog},
		Credentials: func(reg string) (string, string, bool) {
			c, ok := f.opts.Config.DockerCredentials(reg)
			return c.User, c.Password, ok
		},
	}
	im, err := docker.Resolve(ctx, s.ref, opts)
	if err != nil {
		return nil, err
	}
	return f.convertedStream(ctx, im, "docker image "+s.raw, "docker://"+im.Canonical()), nil
}

// convertedStream is the ACI of a docker or OCI image, converted on the fly
// (aci/docker) into a pipe the import reads. contentKey is the record of
// the image's manifest digest: an image already converted is current, and
// a new one is recorded under it once imported.
func (f *Fetcher) convertedStream(ctx context.Context, im *docker.Image, what, contentKey string) *stream {
	if _, id := f.cachedRemote(contentKey); id != "" {
		f.prog.Info("%s is unchanged (%s), already converted as %s", upperFirst(what), im.Digest, id)
		return &stream{current: id, end: func(*store.ImageInfo, bool) {}}
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := im.WriteACI(ctx, pw)
		pw.CloseWithError(err)
		werr <- err
	}()
	return &stream{r: pr, end: func(info *store.ImageInfo, _ bool) {
		// A conversion error reaches the import as a read error of the
		// stream (and is the one reported); an import error stops the
		// conversion.
		pr.CloseWithError(errImportEnded)
		<-werr
		if info != nil {
			f.prog.Info("Converted %s (%s) as %s", what, im.Digest, info.ID)
			f.setRemote(contentKey, info.ID, "", 0)
			f.recordLayers(im, info.ID)
		}
	}}
}

func upperFirst(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

var errImportEnded = errors.New("the store stopped reading")

// recordLayers notes the layers of the image imported as id, which keeps
// them from image gc while the image is in the store.
func (f *Fetcher) recordLayers(im *docker.Image, id string) {
	if f.opts.DockerLayers == nil {
		return
	}
	dgs, err := im.LayerDigests()
	if err == nil {
		err = f.opts.DockerLayers.Record(id, dgs)
	}
	if err != nil {
		f.prog.Warn("warning: %v", err)
	}
}

// layerProgress reports layer downloads in the shape rkt 1.30's docker
// fetcher printed, which logs and scripts written for it match:
// "Downloading sha256:6089112fedd [====...]  3.72 MB / 3.72 MB", redrawn
// on a terminal, once when the layer is done otherwise.
type layerProgress struct{ p *progress }

func (l layerProgress) StartLayer(label string, total int64) docker.LayerProgress {
	return &layerBar{p: l.p, label: label, total: total}
}

type layerBar struct {
	p         *progress
	label     string
	total     int64
	done      int64
	lastDrawn time.Time
}

func (b *layerBar) Add(n int) {
	b.done += int64(n)
	if b.p == nil || b.p.w == nil || !b.p.tty {
		return
	}
	if now := time.Now(); now.Sub(b.lastDrawn) >= 100*time.Millisecond {
		b.lastDrawn = now
		b.draw("\r", "\x1b[K")
	}
}

func (b *layerBar) Finish(err error) {
	if b.p == nil || b.p.w == nil {
		return
	}
	if err != nil {
		if b.p.tty {
			b.draw("\r", "\x1b[K\n")
		}
		b.p.printf("Download of %s stopped after %s: %v", b.label, decimalSize(b.done), err)
		return
	}
	if b.p.tty {
		b.draw("\r", "\x1b[K\n")
	} else {
		b.draw("", "\n")
	}
}

func (b *layerBar) draw(before, after string) {
	const width = 50
	total := b.total
	if total <= 0 {
		total = max(b.done, 1)
	}
	filled := min(max(int(float64(width)*float64(b.done)/float64(total)), 0), width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	line := fmt.Sprintf("%sDownloading %s [%s] %8s / %s%s", before, b.label, bar, decimalSize(b.done), decimalSize(total), after)
	b.p.mu.Lock()
	io.WriteString(b.p.w, line)
	b.p.mu.Unlock()
}

// decimalSize is n as rkt's progress wrote sizes: three significant
// digits, powers of 1000 ("3.72 MB").
func decimalSize(n int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	size := float64(n)
	i := 0
	for size >= 1000 && i < len(units)-1 {
		size /= 1000
		i++
	}
	return fmt.Sprintf("%.3g %s", size, units[i])
}
