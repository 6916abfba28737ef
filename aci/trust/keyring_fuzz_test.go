package trust

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzKeyring feeds key files (what `rkt trust` downloads and what lies in
// the trusted key directories) to the key parser and to a keystore holding
// that file under the name of the fingerprint it claims.
func FuzzKeyring(f *testing.F) {
	for _, opts := range []KeyOptions{{}, {Email: "a@example.com", Comment: "c"}} {
		e, err := NewSigningKey("Fuzz Seed", opts)
		if err != nil {
			f.Fatal(err)
		}
		armored, err := ArmorPublicKey(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(armored)
		f.Add(armored[:len(armored)/2])
	}
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n=AAAA\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte{0x99, 0x00, 0x0d, 0x04})
	f.Fuzz(func(t *testing.T, raw []byte) {
		el, err := ReadKeys(raw)
		if err != nil {
			return
		}
		if len(el) == 0 {
			t.Fatal("ReadKeys: no key and no error")
		}
		fp := Fingerprint(el[0])
		_ = FormatFingerprint(fp)
		_ = Identities(el[0])
		if !isFingerprint(fp) {
			return
		}
		dir := t.TempDir()
		p := filepath.Join(dir, trustedKeysDir, rootDir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, fp), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		kr, err := New("", dir).Keyring(id("example.com/app"))
		if err != nil {
			return
		}
		for _, k := range kr.Keys {
			if k.Entity == nil || k.Fingerprint != fp {
				t.Fatalf("keyring holds %+v, want only %s", k, fp)
			}
		}
		_ = kr.Entities()
	})
}
