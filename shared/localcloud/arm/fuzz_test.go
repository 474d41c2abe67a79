package arm

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzARMPath sends arbitrary methods, paths, queries and bodies, authenticated, to a service
// holding a group, a vault and an assignment: every answer must be a client error or success,
// never a 5xx, and never a panic.
func FuzzARMPath(f *testing.F) {
	vault := vaultPath("rg", "kv-fuzz")
	seeds := []struct{ method, path, query, body string }{
		{"GET", subPath, "api-version=2022-09-01", ""},
		{"GET", "/subscriptions", "api-version=1", ""},
		{"PUT", groupPath("rg2"), "api-version=1", `{"location":"westeurope","tags":{"a":"b"}}`},
		{"PATCH", groupPath("rg"), "api-version=1", `{"tags":null}`},
		{"DELETE", groupPath("rg"), "api-version=1", ""},
		{"HEAD", groupPath("RG"), "api-version=1", ""},
		{"PUT", vaultPath("rg", "kv-2"), "api-version=1", `{"location":"x","properties":{"tenantId":"` + testTenant + `","sku":{"name":"standard"}}}`},
		{"PUT", vault, "api-version=1", `{"location":"westeurope","properties":{"tenantId":null,"sku":{}}}`},
		{"DELETE", vault, "api-version=1", ""},
		{"GET", vault + "/providers/Microsoft.Authorization/roleAssignments", "api-version=1&$filter=atScope()", ""},
		{"PUT", assignmentPath(vault+"/secrets/x", "f0000000-0000-4000-a000-000000000009"), "api-version=1", `{"properties":{"roleDefinitionId":"/x/4633458b-17de-408a-b874-0445c86b69e6","principalId":"p"}}`},
		{"DELETE", assignmentPath(vault, "f0000000-0000-4000-a000-000000000001"), "api-version=1", ""},
		{"GET", "/providers/Microsoft.Authorization/roleDefinitions", "api-version=1&$filter=roleName eq 'Reader'", ""},
		{"GET", subPath + "/resourceGroups/rg/providers/Microsoft.Web/sites/x/config/appsettings/list", "api-version=1", ""},
		{"POST", groupPath("rg") + "/providers/a/b/c/d/e/f", "", "\x00"},
		{"GET", "/%2F/subscriptions", "api-version=1", "[]"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.body)
	}
	e := newEnv(f)
	e.createGroup("rg")
	e.createVault("rg", "kv-fuzz")
	e.do(http.MethodPut, assignmentPath(vault, "f0000000-0000-4000-a000-000000000001"), assignmentBody("4633458b-17de-408a-b874-0445c86b69e6", e.dev.ObjectID))
	h := e.arm.Handler()
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		u := &url.URL{Scheme: "https", Host: Host, Path: path, RawQuery: query}
		if !validMethod(method) {
			method = http.MethodGet
		}
		req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s answered %d: %s", method, path, query, rec.Code, rec.Body)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
