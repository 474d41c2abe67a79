package entra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateSignerKeepsTheKey(t *testing.T) {
	dir := t.TempDir()
	s1, err := LoadOrCreateSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("signing-key.pem mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(filepath.Join(dir, "signing-key.pem"))
	if err != nil || !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("signing-key.pem is not PKCS#8 PEM: %v", err)
	}

	// A restart: the same key, so a token issued before still validates.
	e := newEnv(t)
	before := New(Options{Directory: e.dir, Signer: s1, Now: e.clock.Now})
	at, err := before.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadOrCreateSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyID() != s1.KeyID() || s1.KeyID() == "" {
		t.Fatalf("kid changed across restarts: %q → %q", s1.KeyID(), s2.KeyID())
	}
	after := New(Options{Directory: e.dir, Signer: s2, Now: e.clock.Now})
	if _, err := after.ValidateAccessToken(at.Token, vaultResource); err != nil {
		t.Fatalf("a token from before the restart is refused: %v", err)
	}
	// Another key is another kid, and its tokens are refused.
	if sharedSigner().KeyID() == s1.KeyID() {
		t.Fatal("two keys share a kid")
	}
	if _, err := e.svc.ValidateAccessToken(at.Token, vaultResource); err == nil {
		t.Fatal("a token signed with another key validates")
	}
}

func TestLoadOrCreateSignerRefusesDamagedKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing-key.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSigner(dir); err == nil || !strings.Contains(err.Error(), "signing-key.pem") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}
