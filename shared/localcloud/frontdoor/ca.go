package frontdoor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// File names inside the directory given to LoadOrCreateCA.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// Backdating absorbs clock skew between the proxy and a client (containers, VMs).
	backdate = time.Hour
	// A cached leaf this close to expiry is minted again, so a long-running cloud never serves an expired one.
	leafRenewBefore = 24 * time.Hour
)

// CA is the local cloud's certificate authority (ECDSA P-256). Apps trust it through
// SSL_CERT_FILE / NODE_EXTRA_CA_CERTS; it signs one leaf per emulated host name.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// NewCA returns a fresh in-memory CA.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "localcloud CA",
			Organization: []string{"Key Vault bootstrapping tutorial local cloud"},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// SubjectKeyId is left empty: CreateCertificate derives it for CAs, and leaves then carry
		// the matching Authority Key Identifier.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: parsing CA certificate: %w", err)
	}
	return newCA(cert, key), nil
}

func newCA(cert *x509.Certificate, key *ecdsa.PrivateKey) *CA {
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:     key,
		leaves:  make(map[string]*tls.Certificate),
	}
}

// LoadOrCreateCA keeps the CA in dir as ca.pem (certificate) and ca-key.pem (PKCS#8, mode 0600),
// so apps keep trusting the same CA across restarts. It reuses the files when both are present and
// form a valid, unexpired CA pair; otherwise it creates a new CA and replaces them atomically.
// One process at a time should own dir.
func LoadOrCreateCA(dir string) (*CA, error) {
	if ca, err := loadCA(dir); err == nil {
		return ca, nil
	} else if !errors.Is(err, errNoCA) {
		return nil, err
	}
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: encoding CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("frontdoor: %w", err)
	}
	// Key first: a crash between the two renames leaves an old or missing ca.pem, which loadCA rejects.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileAtomic(dir, CAKeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(dir, CAFile, ca.certPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// errNoCA means dir holds no usable CA pair, so a new one should be made.
var errNoCA = errors.New("no usable CA")

func loadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNoCA
		}
		return nil, fmt.Errorf("frontdoor: %w", err)
	}
	keyPath := filepath.Join(dir, CAKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNoCA
		}
		return nil, fmt.Errorf("frontdoor: %w", err)
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || certBlock.Type != "CERTIFICATE" || keyBlock == nil || keyBlock.Type != "PRIVATE KEY" {
		return nil, errNoCA
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, errNoCA
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, errNoCA
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	now := time.Now()
	if !ok || key.Curve != elliptic.P256() || !key.PublicKey.Equal(cert.PublicKey) ||
		!cert.IsCA || now.Before(cert.NotBefore) || !now.Before(cert.NotAfter.Add(-leafRenewBefore)) {
		return nil, errNoCA
	}
	// An older tool or a user's umask may have loosened the key file; the key signs every leaf.
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(keyPath, 0o600); err != nil {
			return nil, fmt.Errorf("frontdoor: %w", err)
		}
	}
	return newCA(cert, key), nil
}

// writeFileAtomic writes name in dir via a synced temp file and a rename, so readers (apps reading
// SSL_CERT_FILE, a restarted cloud) never see a half-written file.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("frontdoor: %w", err)
	}
	// Sync the directory so the rename itself survives a crash; not every OS allows it, so best effort.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// CertPEM returns the CA certificate in PEM form, as written to ca.pem.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a new certificate pool holding only this CA, as an app with SSL_CERT_FILE sees it.
func (c *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	return pool
}

// LeafFor returns a server certificate for host (ECDSA P-256, SAN = host, valid about a year and
// never past the CA), minting it on first use and caching it per host.
func (c *CA) LeafFor(host string) (*tls.Certificate, error) {
	host = strings.ToLower(host)
	if host == "" {
		return nil, errors.New("frontdoor: LeafFor: empty host")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if leaf, ok := c.leaves[host]; ok && now.Before(leaf.Leaf.NotAfter.Add(-leafRenewBefore)) {
		return leaf, nil
	}
	// Minting under the lock keeps concurrent first handshakes for one host from minting twice;
	// a P-256 leaf takes tens of microseconds.
	leaf, err := c.mintLeaf(host, now)
	if err != nil {
		return nil, err
	}
	c.leaves[host] = leaf
	return leaf, nil
}

func (c *CA) mintLeaf(host string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: generating leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: creating leaf for %s: %w", host, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: parsing leaf for %s: %w", host, err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{der, c.cert.Raw},
		PrivateKey:  key,
		Leaf:        cert,
	}, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("frontdoor: generating serial: %w", err)
	}
	return serial, nil
}
