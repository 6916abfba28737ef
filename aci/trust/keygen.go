package trust

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// KeyAlgorithm is the public key algorithm of a generated signing key.
type KeyAlgorithm string

// Supported algorithms: what modern gpg makes by default (ed25519) and the
// classic one (RSA, 3072 bits).
const (
	Ed25519 KeyAlgorithm = "ed25519"
	RSA     KeyAlgorithm = "rsa"
)

// KeyOptions shape a generated key.
type KeyOptions struct {
	Algorithm KeyAlgorithm // default Ed25519
	Email     string
	Comment   string
	// Lifetime makes the key expire after that long; 0 never expires.
	Lifetime time.Duration
	// Created is the key's creation time; zero means now.
	Created time.Time
	// RSABits defaults to 3072.
	RSABits int
}

// NewSigningKey generates a key pair able to sign images, with one user ID
// made of name and opts.Email. It is used by acisign and by tests; real
// deployments may equally use keys made by gpg.
func NewSigningKey(name string, opts KeyOptions) (*openpgp.Entity, error) {
	cfg := &packet.Config{DefaultHash: crypto.SHA256}
	switch opts.Algorithm {
	case Ed25519, "":
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
	case RSA:
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = opts.RSABits
		if cfg.RSABits == 0 {
			cfg.RSABits = 3072
		}
	default:
		return nil, fmt.Errorf("generating key for %q: unknown algorithm %q (known: ed25519, rsa)", name, opts.Algorithm)
	}
	if opts.Lifetime > 0 {
		cfg.KeyLifetimeSecs = uint32(opts.Lifetime / time.Second)
	}
	if !opts.Created.IsZero() {
		created := opts.Created
		cfg.Time = func() time.Time { return created }
	}
	e, err := openpgp.NewEntity(name, opts.Comment, opts.Email, cfg)
	if err != nil {
		return nil, fmt.Errorf("generating key for %q: %w", name, err)
	}
	return e, nil
}

// ArmorPublicKey serializes e's public key, armored.
func ArmorPublicKey(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, fmt.Errorf("serializing key %s: %w", Fingerprint(e), err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ArmorPrivateKey serializes e with its (unencrypted) private key, armored.
func ArmorPrivateKey(e *openpgp.Entity) ([]byte, error) {
	if e.PrivateKey == nil {
		return nil, fmt.Errorf("serializing key %s: no private key", Fingerprint(e))
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		return nil, fmt.Errorf("serializing key %s: %w", Fingerprint(e), err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadPrivateKey parses an armored or binary secret key, which must not be
// protected by a passphrase (build machines sign unattended).
func ReadPrivateKey(raw []byte) (*openpgp.Entity, error) {
	el, err := ReadKeys(raw)
	if err != nil {
		return nil, err
	}
	for _, e := range el {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			return nil, fmt.Errorf("key %s is protected by a passphrase", Fingerprint(e))
		}
		return e, nil
	}
	return nil, errors.New("no private key found")
}

// SignDetached writes an armored detached signature of data by signer,
// with SHA-256 (fast where the CPU has SHA instructions, and what gpg uses).
func SignDetached(w io.Writer, signer *openpgp.Entity, data io.Reader) error {
	return SignDetachedAt(w, signer, data, time.Time{})
}

// SignDetachedAt is SignDetached with the signature dated at t (zero: now).
func SignDetachedAt(w io.Writer, signer *openpgp.Entity, data io.Reader, t time.Time) error {
	cfg := &packet.Config{DefaultHash: crypto.SHA256}
	if !t.IsZero() {
		cfg.Time = func() time.Time { return t }
	}
	if err := openpgp.ArmoredDetachSign(w, signer, data, cfg); err != nil {
		return fmt.Errorf("signing with key %s: %w", Fingerprint(signer), err)
	}
	return nil
}

// Revoke adds a revocation of e's primary key to e; its serialized public
// key then carries the revocation.
func Revoke(e *openpgp.Entity) error {
	if err := e.RevokeKey(packet.KeyRetired, "retired", nil); err != nil {
		return fmt.Errorf("revoking key %s: %w", Fingerprint(e), err)
	}
	return nil
}
