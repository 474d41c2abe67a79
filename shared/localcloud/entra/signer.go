package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

// signingKeyFile is the name of the signing key's file in the directory LoadOrCreateSigner keeps.
const signingKeyFile = "signing-key.pem"

// Signer holds the RSA key that signs access tokens, and its key ID (the JWT kid).
type Signer struct {
	key *rsa.PrivateKey
	kid string
}

// NewSigner makes a new RSA-2048 signing key.
func NewSigner() (*Signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the token signing key: %w", err)
	}
	return newSigner(key)
}

func newSigner(key *rsa.PrivateKey) (*Signer, error) {
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki)
	return &Signer{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// LoadOrCreateSigner reuses the signing key kept in dir, or makes one and keeps it there
// (signing-key.pem, PKCS#8, mode 0600). Keeping it means tokens issued before a restart still
// validate afterwards, exactly as they would on Azure.
func LoadOrCreateSigner(dir string) (*Signer, error) {
	path := filepath.Join(dir, signingKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s, err := NewSigner()
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(s.key)
		if err != nil {
			return nil, err
		}
		if err := store.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("saving the token signing key: %w", err)
		}
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PKCS#8 PEM private key: delete it to make a new one (tokens issued before stop validating)", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s must hold an RSA key of at least 2048 bits: delete it to make a new one", path)
	}
	return newSigner(rk)
}

// KeyID is the kid of tokens this signer signs: base64url of the SHA-256 of its public key
// (SubjectPublicKeyInfo), so it stays the same for as long as the key does.
func (s *Signer) KeyID() string { return s.kid }

// jwk is one JSON Web Key as Entra ID publishes it.
type jwk struct {
	Kty    string `json:"kty"`
	Use    string `json:"use"`
	Kid    string `json:"kid"`
	N      string `json:"n"`
	E      string `json:"e"`
	Issuer string `json:"issuer,omitempty"`
}

func (s *Signer) jwk(issuer string) jwk {
	return jwk{
		Kty:    "RSA",
		Use:    "sig",
		Kid:    s.kid,
		N:      base64.RawURLEncoding.EncodeToString(s.key.N.Bytes()),
		E:      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(s.key.E)).Bytes()),
		Issuer: issuer,
	}
}
