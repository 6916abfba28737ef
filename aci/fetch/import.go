package fetch

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// expectation is what the fetched image must be.
type expectation struct {
	what   string              // for messages: the argument, or the URL
	name   *types.ACIdentifier // nil: any name
	labels map[types.ACIdentifier]string
	latest bool
}

// check applies appc's rule: the name is the one asked for, and every label
// asked for is in the manifest with the same value.
func (e expectation) check(m *schema.ImageManifest) error {
	if e.name != nil && m.Name != *e.name {
		return fmt.Errorf("%s: the image's manifest names %q, not %q: %w", e.what, m.Name, *e.name, ErrMismatch)
	}
	for k, want := range e.labels {
		got, ok := m.GetLabel(k.String())
		if !ok {
			return fmt.Errorf("%s: image %s has no label %s (asked for %s=%s): %w", e.what, m.Name, k, k, want, ErrMismatch)
		}
		if got != want {
			return fmt.Errorf("%s: image %s has label %s=%s, not %s=%s: %w", e.what, m.Name, k, got, k, want, ErrMismatch)
		}
	}
	return nil
}

// importVerified imports one ACI stream into the store after checking it
// against sig and exp, in one pass (see gatedReader); verified skips the
// signature (waived, or checked by the source). failedSource tells the
// caller whether the source failed (a partial download worth resuming)
// rather than the content.
func (f *Fetcher) importVerified(src io.Reader, sig []byte, verified bool, exp expectation) (info store.ImageInfo, failedSource bool, err error) {
	var check *trust.Check
	if !verified {
		if check, err = f.newCheck(sig, exp); err != nil {
			return info, false, err
		}
	}
	c := newChecks(check, exp)
	gr := newGatedReader(src, c.finish, c.sinks...)
	start := time.Now()
	info, err = f.opts.Store.Import(gr, store.ImportOptions{Latest: exp.latest, NoRender: f.opts.NoRender})
	if err != nil && !c.finished && gr.err == nil && check != nil {
		// The store refused the content before its end. If that is
		// because it was tampered with, the signature says so more
		// clearly: read the rest through the checks.
		if _, derr := io.Copy(io.Discard, gr); derr != nil {
			var ve *trust.VerifyError
			if errors.As(derr, &ve) {
				return store.ImageInfo{}, false, derr
			}
		}
	}
	if !c.finished {
		c.release() // the import stopped before the end
	}
	if gr.err != nil {
		// Our own reason is more precise than the store's report of it.
		return store.ImageInfo{}, gr.srcErr, named(gr.err, exp)
	}
	if err != nil {
		return store.ImageInfo{}, false, fmt.Errorf("importing %s: %w", exp.what, err)
	}
	if !gr.passed {
		if err := f.checkRest(gr, info, start); err != nil {
			return store.ImageInfo{}, false, err
		}
	}
	f.imported(info)
	if c.signer != nil {
		f.prog.Info("Signed by %s (key trusted for %s)", c.signer, prefixName(c.signer.Prefix))
	}
	if f.onVerified != nil {
		f.onVerified(&Verified{Name: c.manifest.Name.String(), Manifest: c.manifest, Signer: c.signer})
	}
	return info, false, nil
}

// newCheck starts the signature check of sig. A key that cannot be trusted for the expected name fails here,
// before anything is read.
func (f *Fetcher) newCheck(sig []byte, exp expectation) (*trust.Check, error) {
	if f.opts.Keystore == nil {
		return nil, fmt.Errorf("%s: no trust keystore to verify the image with: %w", exp.what, trust.ErrUntrusted)
	}
	check, err := f.opts.Keystore.NewCheck(sig)
	if err != nil {
		return nil, named(err, exp)
	}
	if exp.name != nil {
		if err := check.Precheck(*exp.name); err != nil {
			check.Abort()
			return nil, err
		}
	}
	return check, nil
}

// checkRest handles a store that finished without the last byte, which it
// must not: it runs the checks on the rest now and takes the image back if
// they fail.
func (f *Fetcher) checkRest(gr *gatedReader, info store.ImageInfo, start time.Time) error {
	_, err := io.Copy(io.Discard, gr)
	if err == nil && gr.passed {
		return nil
	}
	if rm, ok := f.opts.Store.(remover); ok && !info.ImportTime.Before(start) {
		rm.Remove(info.ID)
	}
	if err == nil {
		err = errors.New("the store did not read the whole image")
	}
	return err
}

// checks are what runs beside an import: the manifest scan and, unless
// verification is waived, the signature check, each on its own goroutine.
type checks struct {
	exp      expectation
	scan     *manifestScan
	scanW    *asyncWriter
	check    *trust.Check // nil: verification waived
	checkW   *asyncWriter
	sinks    []*asyncWriter
	finished bool
	manifest *schema.ImageManifest
	signer   *trust.Signer
}

func newChecks(check *trust.Check, exp expectation) *checks {
	c := &checks{exp: exp, scan: newManifestScan(), check: check}
	c.scanW = newAsyncWriter(c.scan)
	c.sinks = []*asyncWriter{c.scanW}
	if check != nil {
		c.checkW = newAsyncWriter(check)
		c.sinks = append(c.sinks, c.checkW)
	}
	return c
}

// finish runs at the end of the stream: the signature, the manifest and
// the expectation must all pass for the store to get the last byte.
func (c *checks) finish() error {
	c.finished = true
	scanErr := c.scanW.Close()
	var checkErr error
	if c.checkW != nil {
		checkErr = c.checkW.Close()
	}
	m, err := c.scan.Result()
	c.manifest = m
	if checkErr != nil {
		// The signature already failed (unknown key): say so first.
		c.check.Abort()
		return checkErr
	}
	// A tampered image is reported as tampered, even when it is too
	// damaged to have a readable manifest.
	if c.check != nil {
		if cerr := c.check.Complete(); cerr != nil {
			return named(cerr, c.exp)
		}
	}
	if err == nil {
		err = scanErr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.exp.what, err)
	}
	if err := c.exp.check(m); err != nil {
		return err
	}
	if c.check != nil {
		s, err := c.check.Finish(m.Name)
		if err != nil {
			return err
		}
		c.signer = s
	}
	return nil
}

// release stops the checks of an import that ended before the stream did.
func (c *checks) release() {
	c.scanW.Close()
	c.scan.abort()
	if c.checkW != nil {
		c.checkW.Close()
		c.check.Abort()
	}
}

func prefixName(p string) string {
	if p == "" {
		return "all images"
	}
	return "prefix " + p
}

func named(err error, exp expectation) error {
	var ve *trust.VerifyError
	if errors.As(err, &ve) && ve.Name == "" {
		ve.Name = exp.what
	}
	return err
}
