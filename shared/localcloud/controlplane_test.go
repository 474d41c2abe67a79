package localcloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// controlPlane is a client of the local Resource Manager and Graph, signed in as the developer
// through the local cloud's proxy, the way azlocal reaches them.
type controlPlane struct {
	t      *testing.T
	client *http.Client
	cred   azcore.TokenCredential
}

func newControlPlane(t *testing.T, c *localcloud.Cloud) *controlPlane {
	t.Helper()
	client := c.HTTPClient()
	cred, err := azidentity.NewClientSecretCredential(localcloud.TenantID, localcloud.DeveloperClientID, localcloud.DeveloperClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: client}})
	if err != nil {
		t.Fatal(err)
	}
	return &controlPlane{t: t, client: client, cred: cred}
}

// do sends a JSON request with a token for scope and decodes the JSON answer, if any.
func (p *controlPlane) do(scope, method, rawURL string, body any) (int, map[string]any) {
	p.t.Helper()
	tok, err := p.cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		p.t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			p.t.Fatalf("%s %s answered %d with non-JSON %q", method, rawURL, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

const (
	armScope   = "https://management.azure.com/.default"
	graphScope = "https://graph.microsoft.com/.default"
	armBase    = "https://management.azure.com/subscriptions/" + localcloud.SubscriptionID
)

func (p *controlPlane) arm(method, path, apiVersion string, body any, want int) map[string]any {
	p.t.Helper()
	sep := "?"
	if bytes.ContainsRune([]byte(path), '?') {
		sep = "&"
	}
	status, m := p.do(armScope, method, armBase+path+sep+"api-version="+apiVersion, body)
	if status != want {
		p.t.Fatalf("%s %s = %d, want %d: %v", method, path, status, want, m)
	}
	return m
}

// deployVaultWithReader does what deploy.sh does for the vault: a group, a vault, an app whose
// principal gets Key Vault Secrets User on it. It returns the vault's ID and the principal.
func (p *controlPlane) deployVaultWithReader(group, vault string) (string, string) {
	p.t.Helper()
	p.arm(http.MethodPut, "/resourcegroups/"+group, "2022-09-01", map[string]any{"location": "westeurope"}, http.StatusCreated)
	v := p.arm(http.MethodPut, "/resourceGroups/"+group+"/providers/Microsoft.KeyVault/vaults/"+vault, "2023-07-01", map[string]any{
		"location": "westeurope", "properties": map[string]any{"tenantId": localcloud.TenantID,
			"sku": map[string]any{"family": "A", "name": "standard"}, "enableRbacAuthorization": true},
	}, http.StatusCreated)
	vaultID := v["id"].(string)

	status, app := p.do(graphScope, http.MethodPost, "https://graph.microsoft.com/v1.0/applications", map[string]any{"displayName": "reader-app"})
	if status != http.StatusCreated {
		p.t.Fatalf("creating the application: %d %v", status, app)
	}
	status, sp := p.do(graphScope, http.MethodPost, "https://graph.microsoft.com/v1.0/servicePrincipals", map[string]any{"appId": app["appId"]})
	if status != http.StatusCreated {
		p.t.Fatalf("creating the service principal: %d %v", status, sp)
	}
	roles := p.arm(http.MethodGet, "/providers/Microsoft.Authorization/roleDefinitions?$filter="+url.QueryEscape("roleName eq 'Key Vault Secrets User'"), "2022-04-01", nil, http.StatusOK)
	roleID := roles["value"].([]any)[0].(map[string]any)["id"].(string)
	status, _ = p.do(armScope, http.MethodPut, "https://management.azure.com"+vaultID+"/providers/Microsoft.Authorization/roleAssignments/5e1ec7ed-0000-4000-a000-000000000001?api-version=2022-04-01",
		map[string]any{"properties": map[string]any{"roleDefinitionId": roleID, "principalId": sp["id"], "principalType": "ServicePrincipal"}})
	if status != http.StatusCreated {
		p.t.Fatalf("assigning the role: %d", status)
	}
	return vaultID, sp["id"].(string)
}

func (p *controlPlane) assignmentsAt(scope string) []any {
	p.t.Helper()
	status, m := p.do(armScope, http.MethodGet, "https://management.azure.com"+scope+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()", nil)
	if status != http.StatusOK {
		p.t.Fatalf("listing role assignments: %d %v", status, m)
	}
	return m["value"].([]any)
}

func TestResourceManagerAndGraphThroughTheProxy(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	p := newControlPlane(t, c)

	sub := p.arm(http.MethodGet, "", "2022-12-01", nil, http.StatusOK)
	if sub["tenantId"] != localcloud.TenantID || sub["displayName"] != "Local Cloud" {
		t.Errorf("subscription = %v", sub)
	}
	// The well-known vault is where its resource ID says.
	wk := p.arm(http.MethodGet, "/resourceGroups/"+localcloud.ResourceGroup+"/providers/Microsoft.KeyVault/vaults/"+localcloud.VaultName, "2023-07-01", nil, http.StatusOK)
	if wk["id"] != localcloud.VaultResourceID(localcloud.VaultName) || wk["properties"].(map[string]any)["vaultUri"] != localcloud.VaultURL {
		t.Errorf("well-known vault = %v", wk)
	}
	if got := p.assignmentsAt(localcloud.VaultResourceID(localcloud.VaultName)); len(got) != 2 {
		t.Errorf("the well-known vault has %d assignments, want the seed's 2", len(got))
	}

	vaultID, principal := p.deployVaultWithReader("rg-e2e", "kv-e2e-proxy")
	list := p.assignmentsAt(vaultID)
	if len(list) != 1 || list[0].(map[string]any)["properties"].(map[string]any)["principalId"] != principal {
		t.Fatalf("assignments on the new vault = %v", list)
	}
	if !c.Directory.IsAllowed(principal, directory.ActionGetSecret, vaultID+"/secrets/x") {
		t.Error("the assignment made through ARM grants nothing at the vault")
	}
	// The new vault answers on its own host name, with RBAC: creating a vault grants its creator
	// no data access, as on Azure.
	if status, _ := p.do("https://vault.azure.net/.default", http.MethodGet, "https://kv-e2e-proxy.vault.azure.net/secrets?api-version=7.5", nil); status != http.StatusForbidden {
		t.Errorf("the new vault's data plane answered %d to its creator, want 403", status)
	}
	if status, m := p.do(graphScope, http.MethodGet, "https://graph.microsoft.com/v1.0/me", nil); status != http.StatusBadRequest {
		t.Errorf("/me with an app token = %d %v", status, m)
	}
}

func TestControlPlaneStateSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	c := localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	vaultID, principal := newControlPlane(t, c).deployVaultWithReader("rg-kept", "kv-kept-restart")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "arm.json")); err != nil {
		t.Fatalf("no resource manager state in the folder: %v", err)
	}

	c = localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	p := newControlPlane(t, c)
	p.arm(http.MethodGet, "/resourceGroups/rg-kept/providers/Microsoft.KeyVault/vaults/kv-kept-restart", "2023-07-01", nil, http.StatusOK)
	list := p.assignmentsAt(vaultID)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "5e1ec7ed-0000-4000-a000-000000000001" ||
		list[0].(map[string]any)["properties"].(map[string]any)["principalId"] != principal {
		t.Fatalf("assignments after the restart = %v", list)
	}
	p.arm(http.MethodDelete, "/resourceGroups/rg-kept", "2022-09-01", nil, http.StatusOK)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	p = newControlPlane(t, c)
	p.arm(http.MethodGet, "/resourceGroups/rg-kept", "2022-09-01", nil, http.StatusNotFound)
	if _, ok := c.KeyVault.Vault("kv-kept-restart"); ok {
		t.Error("the deleted group's vault came back")
	}
	p.arm(http.MethodGet, "/resourceGroups/"+localcloud.ResourceGroup, "2022-09-01", nil, http.StatusOK)
}
