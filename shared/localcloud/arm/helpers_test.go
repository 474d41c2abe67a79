package arm

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testsync"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testtoken"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
)

const (
	testTenant    = "6f1d3c2a-0b4e-4c1f-9a7d-2e5b8c9d0a11"
	otherTenant   = "0c8e4b7a-5d2f-4e6a-8b1c-3f9a7d6e5c22"
	testSub       = "1b2c3d4e-0000-4000-a000-00000000005b"
	subPath       = "/subscriptions/" + testSub
	apiVersion    = "?api-version=2022-09-01"
	armAudience   = "https://management.azure.com/"
	vaultAudience = "https://vault.azure.net"
)

// env is a directory, an Entra ID that signs real tokens, a key vault service and the ARM
// service under test, with a developer principal whose ARM token the requests carry.
type env struct {
	t     testing.TB
	dir   *directory.Directory
	entra *entra.Service
	kv    *keyvault.Service
	apps  *appservice.Service
	arm   *Service
	dev   directory.ServicePrincipal
	token string
	log   *testsync.Buffer
}

func newEnv(t testing.TB) *env {
	return newEnvWith(t, store.Memory(), store.Memory(), store.Memory(), store.Memory(), t.TempDir())
}

func newEnvWith(t testing.TB, dirStore, kvStore, armStore, appStore *store.File, workDir string) *env {
	t.Helper()
	e := &env{t: t, log: &testsync.Buffer{}}
	logger := slog.New(slog.NewTextHandler(e.log, nil))
	var err error
	if e.dir, err = directory.New(directory.Options{Store: dirStore}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{testTenant, otherTenant} {
		if _, err := e.dir.AddTenant(id, "test"); err != nil {
			t.Fatal(err)
		}
	}
	e.entra = entra.New(entra.Options{Directory: e.dir, Signer: testtoken.Signer()})
	if e.kv, err = keyvault.New(keyvault.Options{Directory: e.dir, Tokens: e.entra, Store: kvStore, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	if e.apps, err = appservice.New(appservice.Options{Directory: e.dir, Identity: identity.New(identity.Options{Directory: e.dir, Issuer: e.entra}),
		TenantID: testTenant, Logger: logger, Store: appStore, WorkDir: workDir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.apps.Close(); err != nil {
			t.Errorf("closing the app service: %v", err)
		}
	})
	if e.arm, err = New(Options{SubscriptionID: testSub, TenantID: testTenant, Directory: e.dir, Tokens: e.entra,
		KeyVault: e.kv, AppService: e.apps, Store: armStore, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	e.dev = e.principal(testTenant, "developer")
	e.token = e.tokenFor(e.dev, armAudience)
	return e
}

// principal registers an app with a service principal in a tenant (or returns the existing one).
func (e *env) principal(tenant, name string) directory.ServicePrincipal {
	e.t.Helper()
	for _, a := range e.dir.Applications(tenant) {
		if a.DisplayName == name {
			sp, _ := e.dir.ServicePrincipalByAppID(tenant, a.AppID)
			return sp
		}
	}
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

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

func (r response) errorCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// expect checks the status and, for an error, the ARM error code.
func (r response) expect(t testing.TB, status int, code string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if code != "" {
		if got := r.errorCode(t); got != code {
			t.Fatalf("error code = %q, want %q; body: %s", got, code, r.body)
		}
	}
	return r
}

// raw sends a request with an explicit token ("" = no Authorization header).
func (e *env) raw(method, target, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, "https://"+Host+target, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.arm.Handler().ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// do sends a request as the developer; path gets ?api-version= appended when it has no query.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	if !strings.Contains(path, "?") {
		path += apiVersion
	}
	return e.raw(method, path, e.token, body)
}

func groupPath(name string) string { return subPath + "/resourceGroups/" + name }

func vaultPath(group, name string) string {
	return groupPath(group) + "/providers/Microsoft.KeyVault/vaults/" + name
}

func (e *env) createGroup(name string) {
	e.t.Helper()
	if r := e.do(http.MethodPut, groupPath(name), map[string]any{"location": "westeurope"}); r.status != http.StatusCreated && r.status != http.StatusOK {
		e.t.Fatalf("creating group %s: %d %s", name, r.status, r.body)
	}
}

func vaultBodyFor(tenant string) map[string]any {
	return map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": tenant, "sku": map[string]any{"family": "A", "name": "standard"}, "enableRbacAuthorization": true,
	}}
}

func (e *env) createVault(group, name string) string {
	e.t.Helper()
	e.do(http.MethodPut, vaultPath(group, name), vaultBodyFor(testTenant)).expect(e.t, http.StatusCreated, "")
	return vaultPath(group, name)
}

func roleDefID(guid string) string {
	return subPath + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

func assignmentBody(role, principal string) map[string]any {
	return map[string]any{"properties": map[string]any{
		"roleDefinitionId": roleDefID(role), "principalId": principal, "principalType": "ServicePrincipal",
	}}
}

func assignmentPath(scope, name string) string {
	return scope + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// get reads a nested field of decoded JSON: get(m, "properties", "vaultUri").
func get(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func values(t testing.TB, r response) []map[string]any {
	t.Helper()
	raw, ok := r.json(t)["value"].([]any)
	if !ok {
		t.Fatalf("no value array: %s", r.body)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		out = append(out, v.(map[string]any))
	}
	return out
}
