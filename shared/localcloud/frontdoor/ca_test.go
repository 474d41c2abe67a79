package frontdoor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateCAReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "localcloud")
	first, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Error("second LoadOrCreateCA made a new CA instead of reusing ca.pem")
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, first.CertPEM()) {
		t.Error("ca.pem differs from CertPEM")
	}

	keyPath := filepath.Join(dir, CAKeyFile)
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s mode = %o, want 600", CAKeyFile, perm)
	}
	keyPEM, _ := os.ReadFile(keyPath)
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s is not a PKCS#8 PEM block", CAKeyFile)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Errorf("%s: %v", CAKeyFile, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want ca.pem and ca-key.pem only (no temp files)", len(entries))
	}

	// A loosened key file is tightened again on load.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("loosened key file mode = %o after load, want 600", fi.Mode().Perm())
	}
}

func TestLoadOrCreateCAReplacesUnusable(t *testing.T) {
	for name, spoil := range map[string]func(dir string) error{
		"corrupt cert": func(dir string) error { return os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644) },
		"missing key":  func(dir string) error { return os.Remove(filepath.Join(dir, CAKeyFile)) },
		"mismatched key": func(dir string) error {
			other, err := NewCA()
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, CAFile), other.CertPEM(), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := spoil(dir); err != nil {
				t.Fatal(err)
			}
			second, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(first.CertPEM(), second.CertPEM()) {
				t.Error("an unusable CA pair was reused")
			}
			third, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(second.CertPEM(), third.CertPEM()) {
				t.Error("the replacement CA was not persisted")
			}
		})
	}
}

func TestCACertificate(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.Certificate()
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a CA certificate: IsCA=%t usage=%v", cert.IsCA, cert.KeyUsage)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key = %T, want ECDSA P-256", cert.PublicKey)
	}
	if len(cert.SubjectKeyId) == 0 {
		t.Error("CA has no Subject Key Identifier")
	}
}

func TestLeafFor(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	const host = "myvault.vault.azure.net"

	// Concurrent first handshakes for one host must share one leaf.
	leaves := make([]any, 16)
	var wg sync.WaitGroup
	for i := range leaves {
		wg.Go(func() {
			leaf, err := ca.LeafFor(host)
			if err != nil {
				t.Error(err)
			}
			leaves[i] = leaf
		})
	}
	wg.Wait()
	for _, l := range leaves[1:] {
		if l != leaves[0] {
			t.Fatal("LeafFor minted more than one leaf for the same host")
		}
	}
	upper, err := ca.LeafFor("MyVault.Vault.Azure.Net")
	if err != nil {
		t.Fatal(err)
	}
	if any(upper) != leaves[0] {
		t.Error("LeafFor is not case-insensitive")
	}
	other, err := ca.LeafFor("other.vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if any(other) == leaves[0] {
		t.Error("two hosts share a leaf")
	}

	leaf := upper.Leaf
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != host {
		t.Errorf("SAN = %v, want [%s]", leaf.DNSNames, host)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key = %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := time.Until(leaf.NotAfter); life < 360*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("leaf valid for %v more, want about a year", life)
	}
	if len(upper.Certificate) != 2 || !bytes.Equal(upper.Certificate[1], ca.Certificate().Raw) {
		t.Error("leaf chain does not carry the CA certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Error(err)
	}
	if _, err := ca.LeafFor(""); err == nil {
		t.Error("LeafFor(\"\") succeeded")
	}
}

// A leaf never outlives its CA, or clients would reject it once the CA expires.
func TestLeafNotAfterCA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "short-lived CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := newCA(cert, key).LeafFor("x.vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Leaf.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("leaf NotAfter = %v, want the CA's %v", leaf.Leaf.NotAfter, cert.NotAfter)
	}
}
