package arm

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

func TestRoleDefinitionsAreTheBuiltInRoles(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	filter := "?api-version=2022-04-01&$filter=" + url.QueryEscape("roleName eq 'key vault secrets user'")
	list := values(t, e.do(http.MethodGet, groupPath("rg")+"/providers/Microsoft.Authorization/roleDefinitions"+filter, nil).expect(t, http.StatusOK, ""))
	if len(list) != 1 {
		t.Fatalf("roleName filter found %d roles", len(list))
	}
	r := list[0]
	if r["id"] != roleDefID(directory.KeyVaultSecretsUser.ID) || r["name"] != directory.KeyVaultSecretsUser.ID ||
		r["type"] != "Microsoft.Authorization/roleDefinitions" || get(r, "properties", "roleName") != "Key Vault Secrets User" ||
		get(r, "properties", "type") != "BuiltInRole" {
		t.Errorf("role definition = %v", r)
	}
	perms := get(r, "properties", "permissions").([]any)[0].(map[string]any)
	if da := perms["dataActions"].([]any); len(da) != 2 || da[0] != directory.ActionGetSecret {
		t.Errorf("dataActions = %v", da)
	}
	acr := values(t, e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter="+url.QueryEscape("roleName eq 'AcrPull'"), nil))
	if len(acr) != 1 || acr[0]["name"] != "7f951dca-4ed3-4a0c-a1b1-0acc8db0b7b0" {
		t.Errorf("AcrPull = %v", acr)
	}
	all := values(t, e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions", nil))
	if len(all) != len(directory.BuiltInRoles) {
		t.Errorf("listed %d roles, want %d", len(all), len(directory.BuiltInRoles))
	}
	m := e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions/"+directory.Reader.ID, nil).expect(t, http.StatusOK, "").json(t)
	if get(m, "properties", "roleName") != "Reader" {
		t.Errorf("Reader = %v", m)
	}
	e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-4000-a000-000000000000", nil).expect(t, http.StatusNotFound, "RoleDefinitionDoesNotExist")
	e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions?api-version=1&$filter=type+eq+'x'", nil).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/policyDefinitions", nil).expect(t, http.StatusBadRequest, "InvalidResourceType")
}

func TestRoleAssignmentGrantsDataAccessUntilDeleted(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	vault := e.createVault("rg", "kv-grant")
	app := e.principal(testTenant, "webapp")
	secret := vault + "/secrets/SecretPassword"
	if e.dir.IsAllowed(app.ObjectID, directory.ActionGetSecret, secret) {
		t.Fatal("allowed before any assignment")
	}
	name := "c0ffee00-1111-4222-8333-444455556666"
	r := e.do(http.MethodPut, assignmentPath(vault, name)+"?api-version=2022-04-01", assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")
	m := r.json(t)
	for path, want := range map[string]any{
		"id": assignmentPath(vault, name), "name": name, "type": "Microsoft.Authorization/roleAssignments",
		"properties/roleDefinitionId": roleDefID(directory.KeyVaultSecretsUser.ID), "properties/principalId": app.ObjectID,
		"properties/principalType": "ServicePrincipal", "properties/scope": vault, "properties/createdBy": e.dev.ObjectID,
	} {
		if got := get(m, splitSlash(path)...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if s, _ := get(m, "properties", "createdOn").(string); !strings.HasSuffix(s, "Z") || len(s) != len("2023-08-23T12:47:46.5507039Z") {
		t.Errorf("createdOn = %q", s)
	}
	if !e.dir.IsAllowed(app.ObjectID, directory.ActionGetSecret, secret) {
		t.Fatal("the assignment does not grant getSecret")
	}

	// Idempotent under its own name; a conflict under another; no changes to an existing one.
	e.do(http.MethodPut, assignmentPath(vault, name), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")
	e.do(http.MethodPut, assignmentPath(vault, "c0ffee00-1111-4222-8333-000000000000"), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusConflict, "RoleAssignmentExists")
	e.do(http.MethodPut, assignmentPath(vault, name), assignmentBody(directory.KeyVaultReader.ID, app.ObjectID)).expect(t, http.StatusConflict, "RoleAssignmentUpdateNotPermitted")

	// Lists: atScope() at the vault, a principal's at the subscription, everything at the group.
	atScope := values(t, e.do(http.MethodGet, vault+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()", nil).expect(t, http.StatusOK, ""))
	if len(atScope) != 1 || atScope[0]["name"] != name {
		t.Errorf("atScope() at the vault = %v", atScope)
	}
	byPrincipal := values(t, e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+url.QueryEscape("principalId eq '"+app.ObjectID+"'"), nil))
	if len(byPrincipal) != 1 || byPrincipal[0]["id"] != assignmentPath(vault, name) {
		t.Errorf("principalId filter = %v", byPrincipal)
	}
	if got := values(t, e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleAssignments?api-version=1&$filter="+url.QueryEscape("principalId eq '"+e.dev.ObjectID+"'"), nil)); len(got) != 0 {
		t.Errorf("the developer has no assignments, got %v", got)
	}
	if got := values(t, e.do(http.MethodGet, groupPath("rg")+"/providers/Microsoft.Authorization/roleAssignments?api-version=1&$filter=atScope()", nil)); len(got) != 0 {
		t.Errorf("atScope() at the group must not show the vault's assignment: %v", got)
	}
	if got := values(t, e.do(http.MethodGet, groupPath("rg")+"/providers/Microsoft.Authorization/roleAssignments", nil)); len(got) != 1 {
		t.Errorf("no filter at the group lists what is below it: %v", got)
	}
	e.do(http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleAssignments?api-version=1&$filter=foo", nil).expect(t, http.StatusBadRequest, "UnsupportedQuery")
	e.do(http.MethodGet, assignmentPath(vault, name), nil).expect(t, http.StatusOK, "")
	e.do(http.MethodGet, assignmentPath(groupPath("rg"), name), nil).expect(t, http.StatusNotFound, "RoleAssignmentNotFound")

	m = e.do(http.MethodDelete, assignmentPath(vault, name), nil).expect(t, http.StatusOK, "").json(t)
	if m["name"] != name {
		t.Errorf("DELETE answered %v", m)
	}
	if e.dir.IsAllowed(app.ObjectID, directory.ActionGetSecret, secret) {
		t.Fatal("still allowed after the assignment was deleted")
	}
	e.do(http.MethodDelete, assignmentPath(vault, name), nil).expect(t, http.StatusNoContent, "")
	e.do(http.MethodGet, assignmentPath(vault, name), nil).expect(t, http.StatusNotFound, "RoleAssignmentNotFound")
}

func TestAssignmentsMadeOutsideResourceManagerAreListed(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	vault := e.createVault("rg", "kv-seeded")
	ra, err := e.dir.AssignRole(e.dev.ObjectID, directory.KeyVaultSecretsOfficer.RoleName, vault)
	if err != nil {
		t.Fatal(err)
	}
	list := values(t, e.do(http.MethodGet, vault+"/providers/Microsoft.Authorization/roleAssignments?api-version=1&$filter=atScope()", nil))
	if len(list) != 1 || list[0]["name"] != ra.Name || list[0]["id"] != ra.ID {
		t.Fatalf("list = %v, want the directory's %s", list, ra.ID)
	}
	e.do(http.MethodDelete, ra.ID, nil).expect(t, http.StatusOK, "")
	if len(e.dir.RoleAssignments(directory.RoleAssignmentFilter{})) != 0 {
		t.Error("the directory still has the assignment")
	}
}

func TestRoleAssignmentRefusals(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	vault := e.createVault("rg", "kv-refuse")
	app := e.principal(testTenant, "app")
	guid := "d00d0000-0000-4000-a000-000000000001"
	cases := []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"name is not a GUID", assignmentPath(vault, "not-a-guid"), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID), 400, "InvalidRoleAssignmentId"},
		{"unknown role", assignmentPath(vault, guid), assignmentBody("00000000-0000-4000-a000-000000000000", app.ObjectID), 400, "RoleDefinitionDoesNotExist"},
		{"unknown principal", assignmentPath(vault, guid), assignmentBody(directory.KeyVaultSecretsUser.ID, "00000000-0000-4000-a000-000000000000"), 400, "PrincipalNotFound"},
		{"principal of another tenant", assignmentPath(vault, guid), assignmentBody(directory.KeyVaultSecretsUser.ID, e.principal(otherTenant, "x").ObjectID), 400, "PrincipalNotFound"},
		{"wrong principal type", assignmentPath(vault, guid), map[string]any{"properties": map[string]any{
			"roleDefinitionId": roleDefID(directory.KeyVaultSecretsUser.ID), "principalId": app.ObjectID, "principalType": "User"}}, 400, "UnmatchedPrincipalType"},
		{"no properties", assignmentPath(vault, guid), map[string]any{}, 400, "InvalidRequestContent"},
		{"not JSON", assignmentPath(vault, guid), "{", 400, "InvalidRequestContent"},
		{"missing group", assignmentPath(groupPath("nope"), guid), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID), 404, "ResourceGroupNotFound"},
		{"missing vault", assignmentPath(vaultPath("rg", "kv-none"), guid), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID), 404, "ResourceNotFound"},
		{"root scope", "/providers/Microsoft.Authorization/roleAssignments/" + guid, assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID), 400, "InvalidScope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.do(http.MethodPut, c.path, c.body).expect(t, c.status, c.code)
		})
	}
	if got := e.dir.RoleAssignments(directory.RoleAssignmentFilter{}); len(got) != 0 {
		t.Errorf("refused requests made assignments: %+v", got)
	}
}

func TestDeletingAGroupDeletesItsVaultsAndTheAssignmentsUnderIt(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg-doomed")
	e.createGroup("rg-kept")
	vault := e.createVault("rg-doomed", "kv-doomed")
	kept := e.createVault("rg-kept", "kv-kept")
	app := e.principal(testTenant, "app")
	for i, scope := range []string{vault, vault + "/secrets/s", groupPath("rg-doomed"), kept} {
		name := "e0000000-0000-4000-a000-00000000000" + string(rune('1'+i))
		e.do(http.MethodPut, assignmentPath(scope, name), assignmentBody(directory.KeyVaultSecretsUser.ID, app.ObjectID)).expect(t, http.StatusCreated, "")
	}
	e.do(http.MethodDelete, groupPath("rg-doomed"), nil).expect(t, http.StatusOK, "")
	if _, ok := e.kv.Vault("kv-doomed"); ok {
		t.Error("the group's vault survived")
	}
	left := e.dir.RoleAssignments(directory.RoleAssignmentFilter{PrincipalID: app.ObjectID})
	if len(left) != 1 || left[0].Scope != kept {
		t.Errorf("assignments left = %+v, want only the one on %s", left, kept)
	}
	if e.dir.IsAllowed(app.ObjectID, directory.ActionGetSecret, vault+"/secrets/s") {
		t.Error("still allowed on the deleted vault")
	}
	if _, ok := e.kv.Vault("kv-kept"); !ok {
		t.Error("another group's vault was deleted")
	}
	e.do(http.MethodGet, vault, nil).expect(t, http.StatusNotFound, "ResourceGroupNotFound")
	// The ARM names of the deleted assignments are forgotten with them.
	e.arm.mu.RLock()
	n := len(e.arm.st.Assignments)
	e.arm.mu.RUnlock()
	if n != 1 {
		t.Errorf("ARM still remembers %d assignment names, want 1", n)
	}
}
