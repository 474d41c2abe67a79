package arm

import (
	"net/http"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

func TestVaultLifecycle(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodPut, vaultPath("rg-missing", "kv-one"), vaultBodyFor(testTenant)).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
	e.createGroup("rg")
	r := e.do(http.MethodPut, vaultPath("rg", "kv-one"), vaultBodyFor(testTenant)).expect(t, http.StatusCreated, "")
	m := r.json(t)
	for path, want := range map[string]any{
		"id": vaultPath("rg", "kv-one"), "name": "kv-one", "type": "Microsoft.KeyVault/vaults", "location": "westeurope",
		"properties/vaultUri": "https://kv-one.vault.azure.net/", "properties/tenantId": testTenant,
		"properties/enableRbacAuthorization": true, "properties/enableSoftDelete": true,
		"properties/softDeleteRetentionInDays": float64(90), "properties/provisioningState": "Succeeded",
		"properties/sku/family": "A", "properties/sku/name": "standard",
	} {
		if got := get(m, splitSlash(path)...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	v, ok := e.kv.Vault("kv-one")
	if !ok || v.ResourceID != vaultPath("rg", "kv-one") || v.TenantID != testTenant {
		t.Fatalf("data plane vault = %+v, %v", v, ok)
	}
	e.do(http.MethodGet, vaultPath("RG", "KV-ONE"), nil).expect(t, http.StatusOK, "")
	// PUT again updates (tags), in place.
	body := vaultBodyFor(testTenant)
	body["tags"] = map[string]string{"app": "demo"}
	m = e.do(http.MethodPut, vaultPath("rg", "kv-one"), body).expect(t, http.StatusOK, "").json(t)
	if get(m, "tags", "app") != "demo" {
		t.Errorf("updated vault = %v", m)
	}

	e.createGroup("rg-other")
	e.do(http.MethodPut, vaultPath("rg-other", "kv-one"), vaultBodyFor(testTenant)).expect(t, http.StatusConflict, "VaultAlreadyExists")
	e.do(http.MethodGet, vaultPath("rg-other", "kv-one"), nil).expect(t, http.StatusNotFound, "ResourceNotFound")
	e.do(http.MethodPut, vaultPath("rg", "1bad"), vaultBodyFor(testTenant)).expect(t, http.StatusBadRequest, "VaultNameNotValid")
	e.do(http.MethodPut, vaultPath("rg", "kv-two"), vaultBodyFor(otherTenant)).expect(t, http.StatusBadRequest, "BadRequest")
	noRBAC := vaultBodyFor(testTenant)
	noRBAC["properties"].(map[string]any)["enableRbacAuthorization"] = false
	e.do(http.MethodPut, vaultPath("rg", "kv-two"), noRBAC).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, vaultPath("rg", "kv-two"), map[string]any{"location": "westeurope"}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, vaultPath("rg", "kv-two"), map[string]any{"properties": map[string]any{}}).expect(t, http.StatusBadRequest, "LocationRequired")
	e.do(http.MethodPut, vaultPath("rg", "kv-two"), `[]`).expect(t, http.StatusBadRequest, "InvalidRequestContent")
	if _, ok := e.kv.Vault("kv-two"); ok {
		t.Error("a refused PUT created a vault")
	}

	list := values(t, e.do(http.MethodGet, groupPath("rg")+"/resources", nil).expect(t, http.StatusOK, ""))
	if len(list) != 1 || list[0]["id"] != vaultPath("rg", "kv-one") || list[0]["type"] != "Microsoft.KeyVault/vaults" {
		t.Errorf("group resources = %v", list)
	}

	e.do(http.MethodDelete, vaultPath("rg", "kv-one"), nil).expect(t, http.StatusOK, "")
	if _, ok := e.kv.Vault("kv-one"); ok {
		t.Error("the vault is still in the data plane")
	}
	e.do(http.MethodDelete, vaultPath("rg", "kv-one"), nil).expect(t, http.StatusNoContent, "")
	e.do(http.MethodGet, vaultPath("rg", "kv-one"), nil).expect(t, http.StatusNotFound, "ResourceNotFound")
	// The name is free again, in any group.
	e.do(http.MethodPut, vaultPath("rg-other", "kv-one"), vaultBodyFor(testTenant)).expect(t, http.StatusCreated, "")
}

func TestDeletingAVaultRemovesTheRoleAssignmentsOnIt(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	vault := e.createVault("rg", "kv-ra")
	app := e.principal(testTenant, "app")
	e.do(http.MethodPut, assignmentPath(vault, "a1b2c3d4-0000-4000-a000-000000000001"), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")
	e.do(http.MethodPut, assignmentPath(vault+"/secrets/one", "a1b2c3d4-0000-4000-a000-000000000002"), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")
	e.do(http.MethodDelete, vault, nil).expect(t, http.StatusOK, "")
	if got := e.dir.RoleAssignments(directory.RoleAssignmentFilter{PrincipalID: app.ObjectID}); len(got) != 0 {
		t.Errorf("assignments left after deleting the vault: %+v", got)
	}
	// A new vault of the same name starts with no grants.
	vault = e.createVault("rg", "kv-ra")
	if e.dir.IsAllowed(app.ObjectID, directory.ActionGetSecret, vault+"/secrets/one") {
		t.Error("the recreated vault inherited an old grant")
	}
}

func splitSlash(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}
