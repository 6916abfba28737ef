package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/appc/spec/schema/types"
)

// Why an image was refused. A *VerifyError wraps exactly one of these.
var (
	// ErrUnsigned: there is no signature to check.
	ErrUnsigned = errors.New("image is not signed")
	// ErrMalformedSignature: the signature is not an OpenPGP signature.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrUntrusted: the signing key is not trusted for the image's name
	// (unknown key, or a key trusted only for other prefixes).
	ErrUntrusted = errors.New("signing key is not trusted")
	// ErrBadSignature: the signature does not match the image (it was
	// tampered with, truncated, or signed something else).
	ErrBadSignature = errors.New("signature does not match the image")
	// ErrKeyExpired: the signing key, or the signature, has expired.
	ErrKeyExpired = errors.New("signing key has expired")
	// ErrKeyRevoked: the signing key has been revoked.
	ErrKeyRevoked = errors.New("signing key has been revoked")
)

// VerifyError is a refused image: which image, which key signed it, which
// prefix's keyring was consulted, and why.
type VerifyError struct {
	Name        string // image name; "" when not known yet
	Fingerprint string // signer's fingerprint, or its 16-hex key ID when the signature names no fingerprint
	Detail      string // human explanation
	Err         error  // one of the sentinels above
	Cause       error  // the underlying openpgp error, if any
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	b.WriteString("verifying signature")
	if e.Name != "" {
		fmt.Fprintf(&b, " of %s", e.Name)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, " (%v)", e.Cause)
	}
	return b.String()
}

func (e *VerifyError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// Signer is who signed a verified image.
type Signer struct {
	Fingerprint string
	Identities  []string
	// Prefix is the keystore prefix that trusts the key ("" for a root key).
	Prefix string
	Entity *openpgp.Entity
}

func (s *Signer) String() string {
	return fmt.Sprintf("%s (%s)", strings.Join(s.Identities, ", "), FormatFingerprint(s.Fingerprint))
}

// Verify checks that sig (an armored or binary detached signature) is a
// valid signature of image by a key trusted for name.
func (ks *Keystore) Verify(name types.ACIdentifier, image io.Reader, sig io.Reader) (*Signer, error) {
	raw, err := io.ReadAll(sig)
	if err != nil {
		return nil, fmt.Errorf("reading signature of %s: %w", name, err)
	}
	c, err := ks.NewCheck(raw)
	if err != nil {
		return nil, withName(err, name.String())
	}
	if err := c.Precheck(name); err != nil {
		c.Abort()
		return nil, err
	}
	if _, err := io.Copy(c, image); err != nil {
		c.Abort()
		if ve := (*VerifyError)(nil); errors.As(err, &ve) {
			return nil, withName(err, name.String())
		}
		return nil, fmt.Errorf("reading image %s: %w", name, err)
	}
	return c.Finish(name)
}

func withName(err error, name string) error {
	var ve *VerifyError
	if errors.As(err, &ve) && ve.Name == "" {
		ve.Name = name
	}
	return err
}

// Check verifies a detached signature while the signed data streams through
// it (Write), so a download is hashed as it arrives rather than read again
// afterwards. Which keys are trusted depends on the image's name, which a
// fetch by URL only learns from the manifest inside the data, so the
// cryptographic check runs against every key of the store and Finish then
// checks that the signer is trusted for the name.
//
// A Check is not safe for concurrent use. Call Finish or Abort exactly once.
type Check struct {
	ks          *Keystore
	sig         *packet.Signature
	sigBinary   []byte
	fingerprint string

	pw     *io.PipeWriter
	done   chan struct{}
	signer *openpgp.Entity
	err    error

	once sync.Once
}

// NewCheck parses sig (armored or binary) and starts hashing. It fails on a
// malformed signature before any data is read.
func (ks *Keystore) NewCheck(sig []byte) (*Check, error) {
	if len(bytes.TrimSpace(sig)) == 0 {
		return nil, &VerifyError{Err: ErrUnsigned, Detail: "the signature is empty"}
	}
	bin := sig
	if block, err := armor.Decode(bytes.NewReader(sig)); err == nil {
		if block.Type != openpgp.SignatureType {
			return nil, &VerifyError{Err: ErrMalformedSignature, Detail: fmt.Sprintf("armored block is a %q, not a %q", block.Type, openpgp.SignatureType)}
		}
		if bin, err = io.ReadAll(block.Body); err != nil {
			return nil, &VerifyError{Err: ErrMalformedSignature, Detail: "bad armor", Cause: err}
		}
	} else if looksArmored(sig) {
		return nil, &VerifyError{Err: ErrMalformedSignature, Detail: "bad armor", Cause: err}
	}
	p, err := packet.NewReader(bytes.NewReader(bin)).Next()
	if err != nil {
		return nil, &VerifyError{Err: ErrMalformedSignature, Detail: "not an OpenPGP signature", Cause: err}
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return nil, &VerifyError{Err: ErrMalformedSignature, Detail: fmt.Sprintf("first packet is a %T, not a signature", p)}
	}
	if s.IssuerKeyId == nil {
		return nil, &VerifyError{Err: ErrMalformedSignature, Detail: "the signature does not name its key"}
	}
	c := &Check{ks: ks, sig: s, sigBinary: bin, done: make(chan struct{})}
	if len(s.IssuerFingerprint) > 0 {
		c.fingerprint = hex.EncodeToString(s.IssuerFingerprint)
	} else {
		c.fingerprint = fmt.Sprintf("%016x", *s.IssuerKeyId)
	}
	all, err := ks.allKeys()
	if err != nil {
		return nil, err
	}
	var candidates openpgp.EntityList
	for _, k := range all {
		if len(openpgp.EntityList{k.Entity}.KeysById(*s.IssuerKeyId)) > 0 {
			candidates = append(candidates, k.Entity)
		}
	}
	pr, pw := io.Pipe()
	c.pw = pw
	go func() {
		defer close(c.done)
		_, signer, err := openpgp.VerifyDetachedSignature(candidates, pr, bytes.NewReader(bin), &packet.Config{})
		c.signer, c.err = signer, err
		// Stop the writer if verification ended before the data did (an
		// unknown key needs no data), and drain nothing more.
		pr.CloseWithError(errCheckEnded)
	}()
	return c, nil
}

var errCheckEnded = errors.New("signature check ended")

func looksArmored(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN"))
}

// Issuer is the signer's fingerprint (or key ID) as the signature names it.
func (c *Check) Issuer() string { return c.fingerprint }

// Precheck tells, before any data is read, whether the signature's key is
// trusted for name, so that a fetch refuses an image signed by an unknown
// key without downloading it.
func (c *Check) Precheck(name types.ACIdentifier) error {
	kr, err := c.ks.Keyring(name)
	if err != nil {
		return err
	}
	if len(kr.Entities().KeysById(*c.sig.IssuerKeyId)) > 0 {
		return nil
	}
	return c.untrusted(name.String(), kr)
}

func (c *Check) untrusted(name string, kr *Keyring) error {
	ve := &VerifyError{Name: name, Fingerprint: c.fingerprint, Err: ErrUntrusted}
	if len(kr.Keys) == 0 {
		ve.Detail = fmt.Sprintf("signed by key %s, but no key is trusted for prefix %q or its parents (add one with: rkt trust --prefix=%s)",
			FormatFingerprint(c.fingerprint), name, name)
		return ve
	}
	fps := make([]string, len(kr.Keys))
	for i, k := range kr.Keys {
		fps[i] = FormatFingerprint(k.Fingerprint)
	}
	ve.Detail = fmt.Sprintf("signed by key %s, which is not among the keys trusted for prefix %q (%s)",
		FormatFingerprint(c.fingerprint), name, strings.Join(fps, "; "))
	return ve
}

// Write hashes p. It fails early when the signature can no longer be valid
// (its key is in no keyring), so a caller can stop downloading.
func (c *Check) Write(p []byte) (int, error) {
	n, err := c.pw.Write(p)
	if err != nil {
		<-c.done
		if c.err != nil {
			return n, c.mapErr("", c.err)
		}
		return n, err
	}
	return n, nil
}

// Abort stops the check and releases its goroutine.
func (c *Check) Abort() {
	c.once.Do(func() {
		c.pw.CloseWithError(errors.New("signature check aborted"))
		<-c.done
	})
}

// Complete ends the data and tells whether the signature matches it and
// its key is valid (not expired, not revoked), before knowing the image's
// name: a tampered image is reported as such even when it is too damaged
// to have a readable manifest.
func (c *Check) Complete() error {
	c.once.Do(func() {
		c.pw.Close()
		<-c.done
	})
	if c.err != nil {
		return c.mapErr("", c.err)
	}
	return nil
}

// Finish ends the data and checks the signature for name: Complete, and
// the signer trusted for name.
func (c *Check) Finish(name types.ACIdentifier) (*Signer, error) {
	if err := c.Complete(); err != nil {
		return nil, withName(err, name.String())
	}
	kr, err := c.ks.Keyring(name)
	if err != nil {
		return nil, err
	}
	fp := Fingerprint(c.signer)
	tk, ok := kr.Find(fp)
	if !ok {
		return nil, c.untrusted(name.String(), kr)
	}
	return &Signer{Fingerprint: fp, Identities: Identities(tk.Entity), Prefix: tk.Prefix, Entity: tk.Entity}, nil
}

func (c *Check) mapErr(name string, err error) error {
	ve := &VerifyError{Name: name, Fingerprint: c.fingerprint, Cause: err}
	fp := FormatFingerprint(c.fingerprint)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		ve.Err, ve.Cause = ErrUntrusted, nil
		ve.Detail = fmt.Sprintf("signed by key %s, which is not in the keystore (add it with: rkt trust)", fp)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		ve.Err, ve.Cause = ErrKeyExpired, nil
		ve.Detail = fmt.Sprintf("key %s%s", fp, c.expiry())
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		ve.Err, ve.Cause = ErrKeyExpired, nil
		ve.Detail = fmt.Sprintf("the signature by key %s has expired", fp)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		ve.Err, ve.Cause = ErrKeyRevoked, nil
		ve.Detail = fmt.Sprintf("key %s", fp)
	default:
		var se pgperrors.SignatureError
		var ste pgperrors.StructuralError
		var ue pgperrors.UnsupportedError
		switch {
		case errors.As(err, &se):
			ve.Err = ErrBadSignature
			ve.Detail = fmt.Sprintf("signature by key %s does not verify: the image was modified or is not the one signed", fp)
		case errors.As(err, &ste), errors.As(err, &ue):
			ve.Err = ErrMalformedSignature
			ve.Detail = fmt.Sprintf("signature by key %s cannot be checked", fp)
		default:
			ve.Err = ErrBadSignature
			ve.Detail = fmt.Sprintf("signature by key %s does not verify", fp)
		}
	}
	return ve
}

// expiry says when the signer's key expired, when it can tell.
func (c *Check) expiry() string {
	if c.signer == nil {
		return ""
	}
	sig, _ := c.signer.PrimarySelfSignature()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return ""
	}
	t := c.signer.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
	return " expired on " + t.UTC().Format(time.RFC3339)
}
