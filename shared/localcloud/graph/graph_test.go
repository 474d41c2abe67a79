package graph

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testtoken"
)

const (
	testTenant  = "6f1d3c2a-0b4e-4c1f-9a7d-2e5b8c9d0a11"
	otherTenant = "0c8e4b7a-5d2f-4e6a-8b1c-3f9a7d6e5c22"
)

type env struct {
	t     testing.TB
	dir   *directory.Directory
	entra *entra.Service
	graph *Service
	token string
	log   *bytes.Buffer
	mu    sync.Mutex
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, log: &bytes.Buffer{}}
	var err error
	if e.dir, err = directory.New(directory.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{testTenant, otherTenant} {
		if _, err := e.dir.AddTenant(id, "test"); err != nil {
			t.Fatal(err)
		}
	}
	e.entra = entra.New(entra.Options{Directory: e.dir, Signer: testtoken.Signer()})
	if e.graph, err = New(Options{Directory: e.dir, Tokens: e.entra, Logger: slog.New(slog.NewTextHandler(lockedWriter{e}, nil))}); err != nil {
		t.Fatal(err)
	}
	e.token = e.tokenFor(e.principal(testTenant, "developer"), Audience)
	return e
}

type lockedWriter struct{ e *env }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.log.Write(p)
}

func (e *env) principal(tenant, name string) directory.ServicePrincipal {
	return testtoken.Principal(e.t, e.dir, tenant, name)
}

func (e *env) tokenFor(sp directory.ServicePrincipal, audience string) string {
	e.t.Helper()
	return testtoken.Token(e.t, e.entra, sp, audience)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a JSON object (%v): %s", err, r.body)
	}
	return m
}

func (r response) expect(t *testing.T, status int, code string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if code != "" {
		e, _ := r.json(t)["error"].(map[string]any)
		if e["code"] != code {
			t.Fatalf("error code = %v, want %s; body: %s", e["code"], code, r.body)
		}
		if inner, _ := e["innerError"].(map[string]any); inner["request-id"] == nil {
			t.Errorf("error without innerError.request-id: %s", r.body)
		}
	}
	return r
}

func (e *env) raw(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, "https://"+Host+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.graph.Handler().ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.Bytes()}
}

func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	return e.raw(method, "/v1.0"+path, e.token, body)
}

func values(t *testing.T, r response) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, v := range r.json(t)["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func filterQuery(f string) string { return "?$filter=" + url.QueryEscape(f) }

func TestApplicationSecretSignsInUntilRemoved(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/applications", map[string]any{"displayName": "my-app", "signInAudience": "AzureADMyOrg"}).expect(t, http.StatusCreated, "")
	app := r.json(t)
	id, appID := app["id"].(string), app["appId"].(string)
	if id == "" || appID == "" || app["displayName"] != "my-app" || app["createdDateTime"] == nil ||
		len(app["passwordCredentials"].([]any)) != 0 || len(app["keyCredentials"].([]any)) != 0 {
		t.Fatalf("created application = %s", r.body)
	}
	if r.header.Get("Location") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("headers = %v", r.header)
	}
	for _, path := range []string{"/applications/" + id, "/applications(appId='" + appID + "')"} {
		if got := e.do(http.MethodGet, path, nil).expect(t, http.StatusOK, "").json(t); got["appId"] != appID {
			t.Errorf("GET %s = %v", path, got)
		}
	}
	for _, f := range []string{"appId eq '" + appID + "'", "displayName eq 'my-app'", "startswith(displayName,'my-')"} {
		if got := values(t, e.do(http.MethodGet, "/applications"+filterQuery(f), nil).expect(t, http.StatusOK, "")); len(got) != 1 || got[0]["id"] != id {
			t.Errorf("filter %q = %v", f, got)
		}
	}
	if got := values(t, e.do(http.MethodGet, "/applications"+filterQuery("displayName eq 'other'"), nil)); len(got) != 0 {
		t.Errorf("filter for another name = %v", got)
	}

	sp := e.do(http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID}).expect(t, http.StatusCreated, "").json(t)
	spID := sp["id"].(string)
	if sp["appId"] != appID || sp["servicePrincipalType"] != "Application" || sp["appOwnerOrganizationId"] != testTenant || sp["displayName"] != "my-app" {
		t.Errorf("service principal = %v", sp)
	}
	e.do(http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID}).expect(t, http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue")
	for _, path := range []string{"/servicePrincipals/" + spID, "/servicePrincipals(appId='" + appID + "')"} {
		e.do(http.MethodGet, path, nil).expect(t, http.StatusOK, "")
	}
	for _, f := range []string{"appId eq '" + appID + "'", "servicePrincipalNames/any(c:c eq '" + appID + "')"} {
		if got := values(t, e.do(http.MethodGet, "/servicePrincipals"+filterQuery(f), nil)); len(got) != 1 || got[0]["id"] != spID {
			t.Errorf("filter %q = %v", f, got)
		}
	}

	pw := e.do(http.MethodPost, "/applications/"+id+"/addPassword", map[string]any{"passwordCredential": map[string]any{
		"displayName": "ci", "endDateTime": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}}).expect(t, http.StatusOK, "").json(t)
	secret, keyID := pw["secretText"].(string), pw["keyId"].(string)
	if len(secret) < 30 || pw["hint"] != secret[:3] || pw["displayName"] != "ci" {
		t.Fatalf("addPassword = %v", pw)
	}
	if _, err := e.dir.VerifyClientSecret(testTenant, appID, secret); err != nil {
		t.Fatalf("the new secret does not sign in: %v", err)
	}
	listed := e.do(http.MethodGet, "/applications/"+id, nil).json(t)["passwordCredentials"].([]any)[0].(map[string]any)
	if listed["keyId"] != keyID || listed["secretText"] != nil {
		t.Errorf("listed credential = %v", listed)
	}
	if strings.Contains(e.logText(), secret) {
		t.Error("the log holds the secret")
	}

	e.do(http.MethodPost, "/applications/"+id+"/removePassword", map[string]any{"keyId": keyID}).expect(t, http.StatusNoContent, "")
	if _, err := e.dir.VerifyClientSecret(testTenant, appID, secret); !errors.Is(err, directory.ErrInvalidClientSecret) {
		t.Fatalf("the removed secret still signs in: %v", err)
	}
	e.do(http.MethodPost, "/applications/"+id+"/removePassword", map[string]any{"keyId": keyID}).expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodPost, "/applications/"+id+"/removePassword", map[string]any{"keyId": "x"}).expect(t, http.StatusBadRequest, "Request_BadRequest")

	e.do(http.MethodDelete, "/applications/"+id, nil).expect(t, http.StatusNoContent, "")
	e.do(http.MethodGet, "/applications/"+id, nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.do(http.MethodGet, "/servicePrincipals/"+spID, nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
}

func (e *env) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

func newCertificate(t *testing.T, rsaKey bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	var der []byte
	var err error
	if rsaKey {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	} else {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestPatchedCertificateIsFoundAtSignIn(t *testing.T) {
	e := newEnv(t)
	app := e.do(http.MethodPost, "/applications", map[string]any{"displayName": "cert-app"}).expect(t, http.StatusCreated, "").json(t)
	id, appID := app["id"].(string), app["appId"].(string)
	e.do(http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID}).expect(t, http.StatusCreated, "")
	der := newCertificate(t, true)
	e.do(http.MethodPatch, "/applications/"+id, map[string]any{"keyCredentials": []map[string]any{{
		"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.StdEncoding.EncodeToString(der), "displayName": "CN=app"}}}).expect(t, http.StatusNoContent, "")
	thumb := sha1.Sum(der)
	kc, _, err := e.dir.CertificateByThumbprint(testTenant, appID, thumb[:])
	if err != nil {
		t.Fatalf("the certificate is not registered: %v", err)
	}
	got := e.do(http.MethodGet, "/applications/"+id, nil).json(t)["keyCredentials"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["keyId"] != kc.KeyID || got[0].(map[string]any)["key"] != nil {
		t.Fatalf("keyCredentials = %v", got)
	}

	// az's --append sends the existing credential back by keyId, and a second one, as PEM here.
	der2 := newCertificate(t, true)
	pemKey := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der2}))
	e.do(http.MethodPatch, "/applications(appId='"+appID+"')", map[string]any{"keyCredentials": []map[string]any{
		{"keyId": kc.KeyID, "type": "AsymmetricX509Cert", "usage": "Verify"},
		{"type": "AsymmetricX509Cert", "usage": "Verify", "key": pemKey},
	}}).expect(t, http.StatusNoContent, "")
	thumb2 := sha1.Sum(der2)
	if _, _, err := e.dir.CertificateByThumbprint(testTenant, appID, thumb2[:]); err != nil {
		t.Fatalf("the appended certificate is not registered: %v", err)
	}

	for name, body := range map[string]any{
		"drops an existing credential": map[string]any{"keyCredentials": []any{}},
		"not base64":                   map[string]any{"keyCredentials": []map[string]any{{"key": "%%%"}}},
		"not a certificate":            map[string]any{"keyCredentials": []map[string]any{{"key": base64.StdEncoding.EncodeToString([]byte("x"))}}},
		"ECDSA key":                    map[string]any{"keyCredentials": []map[string]any{{"key": base64.StdEncoding.EncodeToString(newCertificate(t, false))}}},
		"symmetric type":               map[string]any{"keyCredentials": []map[string]any{{"type": "Symmetric", "key": "AAAA"}}},
		"rename":                       map[string]any{"displayName": "other"},
		"other property":               map[string]any{"web": map[string]any{}},
		"wrong JSON type":              map[string]any{"keyCredentials": "x"},
		"not JSON":                     "{",
	} {
		t.Run(name, func(t *testing.T) {
			e.do(http.MethodPatch, "/applications/"+id, body).expect(t, http.StatusBadRequest, "Request_BadRequest")
		})
	}
	if n := len(e.do(http.MethodGet, "/applications/"+id, nil).json(t)["keyCredentials"].([]any)); n != 2 {
		t.Errorf("refused PATCHes changed the credentials: %d left", n)
	}
}

func TestGraphRefusesMissingOrWrongTokens(t *testing.T) {
	e := newEnv(t)
	e.raw(http.MethodGet, "/v1.0/applications", "", nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
	e.raw(http.MethodGet, "/v1.0/applications", "garbage", nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
	sp := e.principal(testTenant, "someone")
	e.raw(http.MethodGet, "/v1.0/applications", e.tokenFor(sp, "https://management.azure.com/"), nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
	e.raw(http.MethodGet, "/v1.0/applications", e.tokenFor(sp, "https://graph.microsoft.com/"), nil).expect(t, http.StatusOK, "")
	if !strings.Contains(e.logText(), "service=graph") || !strings.Contains(e.logText(), "appid="+sp.AppID) {
		t.Errorf("log = %s", e.logText())
	}
}

func TestCallerSeesOnlyItsOwnTenant(t *testing.T) {
	e := newEnv(t)
	app := e.do(http.MethodPost, "/applications", map[string]any{"displayName": "mine"}).expect(t, http.StatusCreated, "").json(t)
	stranger := e.tokenFor(e.principal(otherTenant, "stranger"), Audience)
	list := e.raw(http.MethodGet, "/v1.0/applications", stranger, nil).expect(t, http.StatusOK, "").json(t)["value"].([]any)
	for _, a := range list {
		if a.(map[string]any)["id"] == app["id"] {
			t.Error("another tenant's caller sees the application")
		}
	}
	e.raw(http.MethodGet, "/v1.0/applications/"+app["id"].(string), stranger, nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
}

func TestGraphClientErrors(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodGet, "/me", nil).expect(t, http.StatusBadRequest, "BadRequest")
	e.raw(http.MethodGet, "/beta/applications", e.token, nil).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodGet, "/users", nil).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodGet, "/applications"+filterQuery("tags/any(t:t eq 'x')"), nil).expect(t, http.StatusBadRequest, "Request_UnsupportedQuery")
	e.do(http.MethodPost, "/applications", map[string]any{}).expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodPost, "/applications", "not json").expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodPost, "/applications", nil).expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodPost, "/servicePrincipals", map[string]any{"appId": "00000000-0000-4000-a000-000000000000"}).expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodPost, "/servicePrincipals", map[string]any{}).expect(t, http.StatusBadRequest, "Request_BadRequest")
	e.do(http.MethodGet, "/applications/00000000-0000-4000-a000-000000000000", nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.do(http.MethodGet, "/applications(appId='nope')", nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.do(http.MethodGet, "/servicePrincipals(appId='nope')", nil).expect(t, http.StatusNotFound, "Request_ResourceNotFound")
	e.do(http.MethodPut, "/applications", nil).expect(t, http.StatusMethodNotAllowed, "Request_BadRequest")
	app := e.do(http.MethodPost, "/applications", map[string]any{"displayName": "x"}).json(t)
	e.do(http.MethodGet, "/applications/"+app["id"].(string)+"/owners", nil).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodGet, "/applications/"+app["id"].(string)+"/addPassword", nil).expect(t, http.StatusMethodNotAllowed, "Request_BadRequest")
	e.do(http.MethodPost, "/applications/"+app["id"].(string)+"/addPassword", `{"passwordCredential":{"endDateTime":"yesterday"}}`).expect(t, http.StatusBadRequest, "Request_BadRequest")
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	e.do(http.MethodPost, "/applications/"+app["id"].(string)+"/addPassword", `{"passwordCredential":{"endDateTime":"`+past+`"}}`).expect(t, http.StatusBadRequest, "Request_BadRequest")
	big := `{"displayName":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	e.do(http.MethodPost, "/applications", big).expect(t, http.StatusRequestEntityTooLarge, "Request_BadRequest")
}

// FuzzGraphPath sends arbitrary requests: never a 5xx, never a panic.
func FuzzGraphPath(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1.0/applications", "$filter=appId eq 'x'"},
		{"POST", "/v1.0/applications", `{"displayName":"a","keyCredentials":[{"key":"AAAA"}]}`},
		{"PATCH", "/v1.0/applications(appId='x')", `{"keyCredentials":[{"keyId":"y"}]}`},
		{"POST", "/v1.0/servicePrincipals", `{"appId":null}`},
		{"GET", "/v1.0/servicePrincipals", "$filter=servicePrincipalNames/any(a:b eq '')"},
		{"DELETE", "/v1.0/applications/%00", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, method, path, rest string) {
		u := &url.URL{Scheme: "https", Host: Host, Path: path, RawQuery: rest}
		req, err := http.NewRequest(method, u.String(), strings.NewReader(rest))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		rec := httptest.NewRecorder()
		e.graph.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, path, rec.Code, rec.Body)
		}
	})
}
