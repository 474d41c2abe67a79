package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testsync"
)

const (
	testTenantID  = "6f1d3c2a-0b4e-4c1f-9a7d-2e5b8c9d0a11"
	otherTenantID = "0c8e4b7a-5d2f-4e6a-8b1c-3f9a7d6e5c22"
	vaultResource = "https://vault.azure.net"
	vaultScope    = vaultResource + "/.default"
)

// RSA keys take tens of milliseconds to make: the tests share a few.
var (
	sharedSigner = sync.OnceValue(func() *Signer {
		s, err := NewSigner()
		if err != nil {
			panic(err)
		}
		return s
	})
	otherRSAKey = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	appCert     = sync.OnceValue(func() testCert { return newTestCert("app-cert") })
	strangeCert = sync.OnceValue(func() testCert { return newTestCert("unregistered-cert") })
)

func mustRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

type testCert struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// newTestCert makes a self-signed client certificate, valid around the real present because
// MSAL stamps assertions with the real clock.
func newTestCert(cn string) testCert {
	key := mustRSAKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return testCert{key: key, cert: c}
}

// env is a tenant with one app that has a client secret, a certificate and a service principal.
type env struct {
	clock  *testsync.Clock
	dir    *directory.Directory
	svc    *Service
	app    directory.Application
	sp     directory.ServicePrincipal
	secret string
	logs   *testsync.Buffer
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c := testsync.NewClock(time.Unix(time.Now().Unix(), 0))
	d, err := directory.New(directory.Options{Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	_, err = d.AddTenant(testTenantID, "Contoso")
	must(err)
	_, err = d.AddTenant(otherTenantID, "Fabrikam")
	must(err)
	app, err := d.CreateApplication(testTenantID, "secret-test-app", "")
	must(err)
	_, secret, err := d.AddPassword(testTenantID, app.AppID, directory.SecretOptions{DisplayName: "test"})
	must(err)
	_, err = d.AddCertificate(testTenantID, app.AppID, appCert().cert.Raw, "test cert")
	must(err)
	sp, err := d.CreateServicePrincipal(testTenantID, app.AppID)
	must(err)
	logs := &testsync.Buffer{}
	svc := New(Options{Directory: d, Signer: sharedSigner(), Now: c.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return &env{clock: c, dir: d, svc: svc, app: app, sp: sp, secret: secret, logs: logs}
}

// do sends a request to the handler; paths are on login.microsoftonline.com.
func (e *env) do(method, path string, body string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://"+Host+path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(w, r)
	return w
}

func tokenPath(tenant string) string { return "/" + tenant + "/oauth2/v2.0/token" }

// secretForm is what MSAL Go posts for a client secret.
func (e *env) secretForm() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {e.app.AppID},
		"client_secret": {e.secret},
		"scope":         {vaultScope + " openid offline_access profile"},
		"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
}

// assertionClaims are the claims MSAL Go puts in a client assertion.
func (e *env) assertionClaims() jwt.MapClaims {
	now := e.clock.Now()
	return jwt.MapClaims{
		"aud": "https://" + Host + "/" + testTenantID + "/oauth2/v2.0/token",
		"exp": now.Add(10 * time.Minute).Unix(),
		"iss": e.app.AppID,
		"jti": uuid.NewString(),
		"nbf": now.Unix(),
		"sub": e.app.AppID,
	}
}

// msalAssertion signs claims the way MSAL Go does: PS256, header x5t#S256 in standard base64.
func msalAssertion(tb testing.TB, c testCert, claims jwt.MapClaims) string {
	tb.Helper()
	sum := sha256.Sum256(c.cert.Raw)
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, claims)
	tok.Header = map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(sum[:])}
	s, err := tok.SignedString(c.key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (e *env) assertionForm(assertion string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {e.app.AppID},
		"client_assertion_type": {jwtBearer},
		"client_assertion":      {assertion},
		"scope":                 {vaultScope + " openid offline_access profile"},
	}
}

func (e *env) postToken(form url.Values) *httptest.ResponseRecorder {
	return e.do(http.MethodPost, tokenPath(testTenantID), form.Encode(), nil)
}

// wantAADError checks an Entra ID error answer, field by field.
func wantAADError(tb testing.TB, w *httptest.ResponseRecorder, status int, oauth string, code int) errorBody {
	tb.Helper()
	var b errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		tb.Fatalf("error body is not JSON: %v: %s", err, w.Body)
	}
	if w.Code != status || b.Error != oauth || len(b.Codes) != 1 || b.Codes[0] != code {
		tb.Fatalf("got %d %s %v, want %d %s [%d]: %s", w.Code, b.Error, b.Codes, status, oauth, code, b.Description)
	}
	prefix := "AADSTS" + strconv.Itoa(code) + ": "
	if !strings.HasPrefix(b.Description, prefix) || !strings.Contains(b.Description, "\r\nTrace ID: "+b.TraceID+"\r\nCorrelation ID: "+b.CorrelationID) {
		tb.Errorf("description %q lacks %q or the trace and correlation IDs", b.Description, prefix)
	}
	if b.ErrorURI != "https://login.microsoftonline.com/error?code="+strconv.Itoa(code) {
		tb.Errorf("error_uri = %q", b.ErrorURI)
	}
	if _, err := time.Parse(entraTimestamp, b.Timestamp); err != nil {
		tb.Errorf("timestamp %q: %v", b.Timestamp, err)
	}
	if _, err := uuid.Parse(b.TraceID); err != nil {
		tb.Errorf("trace_id %q is not a GUID", b.TraceID)
	}
	return b
}

// decodeTokenResponse checks a successful token answer and returns the access token.
func decodeTokenResponse(tb testing.TB, w *httptest.ResponseRecorder) tokenResponse {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil {
		tb.Fatal(err)
	}
	if tr.TokenType != "Bearer" || tr.ExpiresIn != 3599 || tr.ExtExpiresIn != 3599 || tr.AccessToken == "" {
		tb.Fatalf("token response %+v", tr)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		tb.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return tr
}

// signClaims signs arbitrary access token claims with key under kid, to forge tokens.
func signClaims(tb testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
