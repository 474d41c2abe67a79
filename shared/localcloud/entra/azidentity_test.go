package entra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// entraServer serves the handler over TLS with a certificate for login.microsoftonline.com and
// returns an HTTP client that reaches it for that hostname. Only this test routes the SDK this
// way; lesson code reaches the local cloud through HTTPS_PROXY and the local CA instead.
func entraServer(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: Host},
		DNSNames:     []string{Host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := srv.Listener.Addr().String()
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			if hostport != Host+":443" {
				t.Errorf("the SDK dialled %s", hostport)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestAzidentityEndToEnd runs unmodified azidentity (MSAL Go inside): instance discovery,
// OpenID configuration and the token request must all be what it expects.
func TestAzidentityEndToEnd(t *testing.T) {
	e := newEnv(t)
	// MSAL stamps assertions with the real clock, so the service runs on it here.
	e.svc.now = time.Now
	opts := azcore.ClientOptions{Transport: entraServer(t, e.svc.Handler())}
	scope := policy.TokenRequestOptions{Scopes: []string{vaultScope}}
	ctx := context.Background()

	check := func(t *testing.T, cred azcore.TokenCredential, acr string) {
		t.Helper()
		tok, err := cred.GetToken(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(tok.ExpiresOn); d < 55*time.Minute || d > time.Hour {
			t.Errorf("ExpiresOn in %v, want about an hour", d)
		}
		c, err := e.svc.ValidateAccessToken(tok.Token, vaultResource)
		if err != nil {
			t.Fatal(err)
		}
		if c.AppID != e.app.AppID || c.ObjectID != e.sp.ObjectID || c.TenantID != testTenantID || c.AppIDACR != acr {
			t.Errorf("claims = %+v", c)
		}
	}

	t.Run("client secret", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(testTenantID, e.app.AppID, e.secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		before := e.svc.TokenRequests()
		check(t, cred, ACRSecret)
		check(t, cred, ACRSecret) // served from azidentity's cache
		if n := e.svc.TokenRequests() - before; n != 1 {
			t.Errorf("%d token requests, want 1", n)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		c := appCert()
		cred, err := azidentity.NewClientCertificateCredential(testTenantID, e.app.AppID, []*x509.Certificate{c.cert}, c.key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		check(t, cred, ACRCertificate)
	})
	t.Run("wrong secret reaches the developer as AADSTS7000215", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(testTenantID, e.app.AppID, "wrong", &azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, scope)
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") || !strings.Contains(err.Error(), "401") {
			t.Fatalf("got %v, want an authentication failure naming AADSTS7000215", err)
		}
	})
	logs := e.logs.String()
	for _, path := range []string{"path=/common/discovery/instance", "path=/" + testTenantID + "/v2.0/.well-known/openid-configuration", "path=" + tokenPath(testTenantID)} {
		if !strings.Contains(logs, path+" status=200") {
			t.Errorf("MSAL never got %s:\n%s", path, logs)
		}
	}
}
