package keyvault

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testsync"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testtoken"
)

const (
	testTenant      = "11111111-2222-3333-4444-555555555555"
	otherTenant     = "99999999-8888-7777-6666-555555555555"
	testVault       = "myvault"
	testVaultHost   = testVault + "." + DNSSuffix
	testVaultID     = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/" + testVault
	testAPIVersion  = "7.6"
	wantChallenge   = `Bearer authorization="https://login.microsoftonline.com/` + testTenant + `", resource="https://vault.azure.net"`
	tokenErrPrefix  = "err-" // fakeTokens: "err-<sentinel>" fails with that sentinel
	principalPrefix = "tok-" // fakeTokens: "tok-<oid>" is a valid token of that principal
)

// The real validator fits the interface the tests fake.
var _ TokenValidator = (*entra.Service)(nil)

// fakeTokens stands in for entra's validator: "tok-<oid>" is a valid token of the principal
// <oid> in its own tenant; "err-<name>" fails with the entra sentinel of that name.
type fakeTokens struct{ dir *directory.Directory }

var tokenSentinels = map[string]error{
	"expired": entra.ErrExpired, "notyet": entra.ErrNotYetValid, "audience": entra.ErrWrongAudience,
	"issuer": entra.ErrWrongIssuer, "signature": entra.ErrBadSignature, "malformed": entra.ErrMalformedToken,
	"principal": entra.ErrUnknownPrincipal,
}

func (f fakeTokens) ValidateAccessToken(raw, audience string) (*entra.Claims, error) {
	if audience != Audience {
		return nil, fmt.Errorf("%w: asked for %s", entra.ErrWrongAudience, audience)
	}
	if name, ok := strings.CutPrefix(raw, tokenErrPrefix); ok {
		if err, ok := tokenSentinels[name]; ok {
			return nil, fmt.Errorf("%w: test", err)
		}
		return nil, fmt.Errorf("unexpected failure %s", name)
	}
	oid, ok := strings.CutPrefix(raw, principalPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a test token", entra.ErrMalformedToken)
	}
	sp, ok := f.dir.ServicePrincipal(oid)
	if !ok {
		return nil, entra.ErrUnknownPrincipal
	}
	return &entra.Claims{
		TenantID: sp.TenantID, ObjectID: sp.ObjectID, AppID: sp.AppID, AppIDACR: entra.ACRSecret,
		Audience: Audience, Issuer: entra.AccessTokenIssuer(sp.TenantID),
	}, nil
}

// env is a directory with one tenant, a vault in it, and a service over both.
type env struct {
	t     testing.TB
	dir   *directory.Directory
	svc   *Service
	h     http.Handler
	clock *testsync.Clock
	vault Vault
	// officer is a principal with Key Vault Secrets Officer on the vault.
	officer string
}

func newEnv(t testing.TB) *env {
	return newEnvWith(t, nil, slog.New(slog.DiscardHandler))
}

func newEnvWith(t testing.TB, st *store.File, logger *slog.Logger) *env {
	t.Helper()
	clock := testsync.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	dir, err := directory.New(directory.Options{Now: clock.Now})
	must(t, err)
	_, err = dir.AddTenant(testTenant, "Contoso")
	must(t, err)
	_, err = dir.AddTenant(otherTenant, "Fabrikam")
	must(t, err)
	svc, err := New(Options{Directory: dir, Tokens: fakeTokens{dir}, Now: clock.Now, Store: st, Logger: logger})
	must(t, err)
	e := &env{t: t, dir: dir, svc: svc, h: svc.Handler(), clock: clock}
	if e.vault, err = svc.CreateVault(testVault, testTenant, testVaultID); err != nil {
		t.Fatal(err)
	}
	e.officer = e.principal("officer", testTenant, "Key Vault Secrets Officer", testVaultID)
	return e
}

// principal creates an app and its service principal in a tenant, gives it role at scope
// (none if role is ""), and returns its token.
func (e *env) principal(name, tenant, role, scope string) string {
	e.t.Helper()
	sp := testtoken.Principal(e.t, e.dir, tenant, name)
	if role != "" {
		_, err := e.dir.AssignRole(sp.ObjectID, role, scope)
		must(e.t, err)
	}
	return principalPrefix + sp.ObjectID
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// errorCode returns error.code and error.innererror.code.
func (r response) errorCode(t testing.TB) (code, inner string) {
	t.Helper()
	var b errorBody
	r.decode(t, &b)
	if b.Error.InnerError != nil {
		inner = b.Error.InnerError.Code
	}
	return b.Error.Code, inner
}

func (r response) errorMessage(t testing.TB) string {
	t.Helper()
	var b errorBody
	r.decode(t, &b)
	return b.Error.Message
}

// raw sends a request to the vault host; target is the path with its query.
func (e *env) raw(method, host, target, token, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "https://"+host+target, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.serve(req)
}

// serve runs a request through the handler.
func (e *env) serve(req *http.Request) response {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// do calls the test vault with the default api-version.
func (e *env) do(method, path, token, body string) response {
	e.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return e.raw(method, testVaultHost, path+sep+"api-version="+testAPIVersion, token, body)
}

// expect fails the test unless the response has the status.
func (r response) expect(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
