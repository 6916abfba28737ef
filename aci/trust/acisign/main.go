// Command acisign makes signing keys and signs images at build time, so
// that the bundled sample image runs verified:
//
//	acisign --gen-key DIR --name NAME [--email E] [--algo ed25519|rsa]
//	    writes DIR/pubkey.gpg (armored public key) and DIR/privkey.gpg
//	    (armored secret key, mode 0600) and prints the fingerprint
//	acisign --key PRIV --sign FILE [--out FILE.asc]
//	    writes FILE.asc, an armored detached signature
//	acisign --trust PUB --prefix PREFIX --config DIR
//	    trusts PUB for PREFIX in the rkt configuration directory DIR
//	    (DIR/trustedkeys/prefix.d/PREFIX/<fingerprint>), without review
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rktng/rkt/aci/trust"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "acisign:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("acisign", flag.ContinueOnError)
	genKey := fs.String("gen-key", "", "directory to write a new key pair into")
	name := fs.String("name", "", "user name of the new key")
	email := fs.String("email", "", "email of the new key")
	algo := fs.String("algo", "ed25519", "algorithm of the new key: ed25519 or rsa")
	key := fs.String("key", "", "armored secret key to sign with")
	signFile := fs.String("sign", "", "file to sign")
	out := fs.String("out", "", "signature file (default: FILE.asc)")
	trustKey := fs.String("trust", "", "armored public key to trust")
	prefix := fs.String("prefix", "", "image name prefix the key is trusted for")
	configDir := fs.String("config", "", "rkt configuration directory to trust the key in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *genKey != "":
		if *name == "" {
			return errors.New("--gen-key needs --name")
		}
		return generate(*genKey, *name, *email, trust.KeyAlgorithm(*algo), stdout)
	case *signFile != "":
		if *key == "" {
			return errors.New("--sign needs --key")
		}
		dst := *out
		if dst == "" {
			dst = *signFile + ".asc"
		}
		return sign(*key, *signFile, dst)
	case *trustKey != "":
		if *prefix == "" || *configDir == "" {
			return errors.New("--trust needs --prefix and --config")
		}
		ks := trust.New("", *configDir)
		_, err := ks.Trust(context.Background(), trust.TrustOptions{
			Prefix: *prefix, Keys: []string{*trustKey}, SkipFingerprintReview: true, Out: stdout,
		})
		return err
	default:
		fs.Usage()
		return errors.New("give --gen-key, --sign or --trust")
	}
}

func generate(dir, name, email string, algo trust.KeyAlgorithm, stdout io.Writer) error {
	e, err := trust.NewSigningKey(name, trust.KeyOptions{Algorithm: algo, Email: email})
	if err != nil {
		return err
	}
	pub, err := trust.ArmorPublicKey(e)
	if err != nil {
		return err
	}
	priv, err := trust.ArmorPrivateKey(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "privkey.gpg"), priv, 0o600); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, "pubkey.gpg"), pub, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, trust.Fingerprint(e))
	return nil
}

func sign(keyPath, file, dst string) error {
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	e, err := trust.ReadPrivateKey(raw)
	if err != nil {
		return fmt.Errorf("reading key %s: %w", keyPath, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var sig bytes.Buffer
	if err := trust.SignDetached(&sig, e, f); err != nil {
		return fmt.Errorf("signing %s: %w", file, err)
	}
	return writeAtomic(dst, sig.Bytes(), 0o644)
}

// writeAtomic writes via a temporary file and rename, so an interrupted
// build never leaves half a key or signature.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".acisign-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
