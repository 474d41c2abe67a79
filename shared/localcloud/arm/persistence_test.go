package arm

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

func TestGroupsVaultsAndAssignmentNamesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *env {
		return newEnvWith(t, store.Open(filepath.Join(dir, "directory.json")), store.Open(filepath.Join(dir, "keyvault.json")),
			store.Open(filepath.Join(dir, "arm.json")), store.Open(filepath.Join(dir, "appservice.json")), filepath.Join(dir, "work"))
	}
	e := open()
	e.createGroup("rg-kept")
	vault := e.createVault("rg-kept", "kv-kept")
	app := e.principal(testTenant, "app")
	name := "f0000000-0000-4000-a000-000000000001"
	e.do(http.MethodPut, assignmentPath(vault, name), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")

	e = open()
	m := e.do(http.MethodGet, vault, nil).expect(t, http.StatusOK, "").json(t)
	if get(m, "properties", "vaultUri") != "https://kv-kept.vault.azure.net/" {
		t.Errorf("vault after restart = %v", m)
	}
	e.do(http.MethodGet, assignmentPath(vault, name), nil).expect(t, http.StatusOK, "")
	e.do(http.MethodDelete, groupPath("rg-kept"), nil).expect(t, http.StatusOK, "")

	e = open()
	e.do(http.MethodGet, groupPath("rg-kept"), nil).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
}

func TestAdoptVaultPutsAnExistingVaultInAGroup(t *testing.T) {
	e := newEnv(t)
	id := groupPath("rg-seed") + "/providers/Microsoft.KeyVault/vaults/kv-seed"
	if _, err := e.kv.CreateVault("kv-seed", testTenant, id); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent, as every start of the local cloud calls it
		if err := e.arm.AdoptVault("rg-seed", "kv-seed", "West Europe"); err != nil {
			t.Fatal(err)
		}
	}
	m := e.do(http.MethodGet, id, nil).expect(t, http.StatusOK, "").json(t)
	if m["location"] != "westeurope" || m["id"] != id {
		t.Errorf("adopted vault = %v", m)
	}
	if err := e.arm.AdoptVault("rg-seed", "kv-none", "westeurope"); err == nil {
		t.Error("adopting a vault that does not exist succeeded")
	}
}
