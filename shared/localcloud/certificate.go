package localcloud

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"
)

// NewClientCertificate makes a self-signed RSA-2048 certificate for an app to sign in with, as
// `az ad sp create-for-rbac --create-cert` does, and returns its DER and a PEM file holding the
// certificate and its private key (the form AZURE_CLIENT_CERTIFICATE_PATH takes). Entra ID
// accepts only RSA keys for client certificates.
func NewClientCertificate(commonName string, now time.Time) (der, pemFile []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pemFile = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	return der, pemFile, nil
}

// RegisterAppWithCertificate registers an app with a service principal and a new client
// certificate (no secret), and returns the PEM file with the certificate and its private key.
func (c *Cloud) RegisterAppWithCertificate(displayName string) (App, []byte, error) {
	app, err := c.Directory.CreateApplication(TenantID, displayName, "")
	if err != nil {
		return App{}, nil, err
	}
	sp, err := c.Directory.CreateServicePrincipal(TenantID, app.AppID)
	if err != nil {
		return App{}, nil, err
	}
	der, pemFile, err := NewClientCertificate(displayName, c.Directory.Now())
	if err != nil {
		return App{}, nil, err
	}
	if _, err := c.Directory.AddCertificate(TenantID, app.AppID, der, displayName); err != nil {
		return App{}, nil, err
	}
	return App{DisplayName: displayName, ClientID: app.AppID, ObjectID: sp.ObjectID}, pemFile, nil
}
