package arm

import (
	"net/http"
	"strings"
	"testing"
)

func TestSubscriptionIsTheLocalSubscription(t *testing.T) {
	e := newEnv(t)
	m := e.do(http.MethodGet, subPath, nil).expect(t, http.StatusOK, "").json(t)
	want := map[string]any{"id": subPath, "subscriptionId": testSub, "tenantId": testTenant, "displayName": "Local Cloud", "state": "Enabled"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	list := values(t, e.do(http.MethodGet, "/subscriptions", nil).expect(t, http.StatusOK, ""))
	if len(list) != 1 || list[0]["subscriptionId"] != testSub {
		t.Errorf("subscriptions = %v", list)
	}
	e.do(http.MethodGet, "/subscriptions/00000000-0000-4000-a000-000000000000", nil).expect(t, http.StatusNotFound, "SubscriptionNotFound")
	e.do(http.MethodGet, "/subscriptions/not-a-guid", nil).expect(t, http.StatusBadRequest, "InvalidSubscriptionId")
}

func TestRequestsWithoutAValidManagementTokenAreRefused(t *testing.T) {
	e := newEnv(t)
	path := groupPath("rg") + apiVersion
	e.raw(http.MethodGet, path, "", nil).expect(t, http.StatusUnauthorized, "AuthenticationFailed")
	e.raw(http.MethodGet, path, "not.a.jwt", nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationToken")
	r := e.raw(http.MethodGet, path, e.tokenFor(e.dev, vaultAudience), nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer authorization_uri=") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	stranger := e.principal(otherTenant, "stranger")
	e.raw(http.MethodGet, path, e.tokenFor(stranger, armAudience), nil).expect(t, http.StatusUnauthorized, "InvalidAuthenticationTokenTenant")

	// Both management audiences are accepted; authentication comes before the api-version check.
	e.raw(http.MethodGet, subPath+apiVersion, e.tokenFor(e.dev, "https://management.core.windows.net/"), nil).expect(t, http.StatusOK, "")
	e.raw(http.MethodGet, subPath+apiVersion, e.tokenFor(e.dev, "https://management.azure.com"), nil).expect(t, http.StatusOK, "")
	e.raw(http.MethodGet, subPath, "", nil).expect(t, http.StatusUnauthorized, "AuthenticationFailed")
}

func TestEveryRequestNeedsAnAPIVersion(t *testing.T) {
	e := newEnv(t)
	e.raw(http.MethodGet, subPath, e.token, nil).expect(t, http.StatusBadRequest, "MissingApiVersionParameter")
	e.raw(http.MethodPut, groupPath("rg")+"?api-version=", e.token, `{"location":"westeurope"}`).expect(t, http.StatusBadRequest, "MissingApiVersionParameter")
	// Node percent-encodes query keys; the key still counts.
	e.raw(http.MethodGet, subPath+"?api%2Dversion=2022-12-01", e.token, nil).expect(t, http.StatusOK, "")
}

func TestResourceGroupLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPut, groupPath("rg-app"), map[string]any{"location": "West Europe", "tags": map[string]string{"env": "dev"}}).expect(t, http.StatusCreated, "")
	m := r.json(t)
	if m["id"] != groupPath("rg-app") || m["name"] != "rg-app" || m["type"] != "Microsoft.Resources/resourceGroups" ||
		m["location"] != "westeurope" || get(m, "properties", "provisioningState") != "Succeeded" || get(m, "tags", "env") != "dev" {
		t.Errorf("created group = %s", r.body)
	}
	e.do(http.MethodPut, groupPath("rg-app"), map[string]any{"location": "westeurope"}).expect(t, http.StatusOK, "")
	e.do(http.MethodPut, groupPath("rg-app"), map[string]any{"location": "eastus"}).expect(t, http.StatusConflict, "InvalidResourceGroupLocation")

	// Path segments are case-insensitive, as on ARM; the name keeps the case it was created with.
	m = e.do(http.MethodGet, "/SUBSCRIPTIONS/"+strings.ToUpper(testSub)+"/RESOURCEGROUPS/RG-APP", nil).expect(t, http.StatusOK, "").json(t)
	if m["name"] != "rg-app" {
		t.Errorf("GET by other case = %v", m)
	}
	if r := e.do(http.MethodHead, groupPath("rg-app"), nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("HEAD existing = %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodHead, groupPath("nope"), nil); r.status != http.StatusNotFound {
		t.Errorf("HEAD missing = %d", r.status)
	}
	e.createGroup("rg-b")
	list := values(t, e.do(http.MethodGet, subPath+"/resourcegroups", nil).expect(t, http.StatusOK, ""))
	if len(list) != 2 || list[0]["name"] != "rg-app" || list[1]["name"] != "rg-b" {
		t.Errorf("groups = %v", list)
	}
	m = e.do(http.MethodPatch, groupPath("rg-app"), map[string]any{"tags": map[string]string{"env": "prod"}}).expect(t, http.StatusOK, "").json(t)
	if get(m, "tags", "env") != "prod" {
		t.Errorf("PATCH tags = %v", m)
	}

	e.do(http.MethodGet, groupPath("nope"), nil).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
	e.do(http.MethodPut, groupPath("bad%20name!"), map[string]any{"location": "westeurope"}).expect(t, http.StatusBadRequest, "InvalidResourceGroup")
	e.do(http.MethodPut, groupPath("rg-c"), map[string]any{}).expect(t, http.StatusBadRequest, "LocationRequired")
	e.do(http.MethodPut, groupPath("rg-c"), `{"location":`).expect(t, http.StatusBadRequest, "InvalidRequestContent")
	e.do(http.MethodPut, groupPath("rg-c"), `{"location":42}`).expect(t, http.StatusBadRequest, "InvalidRequestContent")
	e.do(http.MethodPut, groupPath("rg-c"), nil).expect(t, http.StatusBadRequest, "InvalidRequestContent")
	e.do(http.MethodPost, groupPath("rg-app"), nil).expect(t, http.StatusMethodNotAllowed, "MethodNotAllowed")

	e.do(http.MethodDelete, groupPath("rg-app"), nil).expect(t, http.StatusOK, "")
	e.do(http.MethodDelete, groupPath("rg-app"), nil).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
	e.do(http.MethodGet, groupPath("rg-app"), nil).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
}

func TestOversizedBodyIsRefused(t *testing.T) {
	e := newEnv(t)
	big := `{"location":"westeurope","tags":{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}}`
	e.do(http.MethodPut, groupPath("rg"), big).expect(t, http.StatusRequestEntityTooLarge, "RequestContentTooLarge")
}

func TestUnknownPathsAndTypesAreClientErrors(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	e.do(http.MethodGet, "/", nil).expect(t, http.StatusNotFound, "InvalidRequestUri")
	e.do(http.MethodGet, subPath+"/somethingElse", nil).expect(t, http.StatusNotFound, "InvalidRequestUri")
	e.do(http.MethodGet, groupPath("rg")+"/providers/Microsoft.Storage/storageAccounts/x", nil).expect(t, http.StatusBadRequest, "InvalidResourceType")
	e.do(http.MethodGet, groupPath("rg")+"/providers/Microsoft.KeyVault/vaults/kv-x/secrets/s", nil).expect(t, http.StatusNotFound, "InvalidRequestUri")
	e.do(http.MethodGet, subPath+"//resourceGroups", nil).expect(t, http.StatusBadRequest, "InvalidRequestUri")
}

func TestRequestLogNamesCallerButNeverToken(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg-logged")
	e.raw(http.MethodGet, groupPath("rg-logged"), "", nil)
	out := e.log.String()
	for _, want := range []string{"service=arm", "method=PUT", "path=" + groupPath("rg-logged"), "status=201", "appid=" + e.dev.AppID, "status=401", "error=AuthenticationFailed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, e.token[:40]) {
		t.Error("the log contains the bearer token")
	}
}
