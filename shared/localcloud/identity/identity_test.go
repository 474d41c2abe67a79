package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
)

const (
	tenantID = "10ca1c10-0000-4000-a000-000000000000"
	site     = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/web"
	uaiID    = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
)

// fakeIssuer stands in for Entra: the token names the principal it was issued for.
type fakeIssuer struct{ calls []string }

func (f *fakeIssuer) IssueAccessToken(sp directory.ServicePrincipal, resource, acr string) (entra.AccessToken, error) {
	f.calls = append(f.calls, sp.ObjectID+" "+resource+" "+acr)
	return entra.AccessToken{Token: "token-for-" + sp.ObjectID, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func setup(t *testing.T) (*Service, *directory.Directory, *fakeIssuer) {
	t.Helper()
	d, err := directory.New(directory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddTenant(tenantID, "Local"); err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{}
	return New(Options{Directory: d, Issuer: f}), d, f
}

func start(t *testing.T, s *Service) *Endpoint {
	t.Helper()
	e, err := s.Start(site)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func get(t *testing.T, e *Endpoint, header string, query url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"?"+query.Encode(), nil)
	if header != "" {
		req.Header.Set("X-IDENTITY-HEADER", header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("reply is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

func vaultQuery() url.Values {
	return url.Values{"api-version": {APIVersion}, "resource": {"https://vault.azure.net"}}
}

func TestTokenServiceRefusesCallersWithoutTheInjectedHeader(t *testing.T) {
	s, d, f := setup(t)
	if _, err := d.EnableSystemAssignedIdentity(tenantID, site); err != nil {
		t.Fatal(err)
	}
	e := start(t, s)
	for name, header := range map[string]string{"missing": "", "wrong": strings.Repeat("0", len(e.Header)), "prefix": e.Header[:10]} {
		status, body := get(t, e, header, vaultQuery())
		if status != http.StatusUnauthorized || body["access_token"] != nil {
			t.Errorf("%s header: status %d body %v, want 401 and no token", name, status, body)
		}
	}
	if len(f.calls) != 0 {
		t.Fatalf("tokens were minted for refused callers: %v", f.calls)
	}
}

func TestSystemAssignedTokenHasAppServiceShape(t *testing.T) {
	s, d, f := setup(t)
	sp, _ := d.EnableSystemAssignedIdentity(tenantID, site)
	e := start(t, s)
	status, body := get(t, e, e.Header, vaultQuery())
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	if body["access_token"] != "token-for-"+sp.ObjectID || body["token_type"] != "Bearer" || body["client_id"] != sp.AppID || body["resource"] != "https://vault.azure.net" {
		t.Fatalf("body %v", body)
	}
	if _, ok := body["expires_on"].(string); !ok {
		t.Fatalf("expires_on must be a string of Unix seconds: %v", body["expires_on"])
	}
	if f.calls[0] != sp.ObjectID+" https://vault.azure.net "+entra.ACRCertificate {
		t.Fatalf("issuer called with %v", f.calls)
	}
}

func TestEachStartInjectsANewHeader(t *testing.T) {
	s, _, _ := setup(t)
	a, b := start(t, s), start(t, s)
	if a.Header == b.Header || len(a.Header) < 32 {
		t.Fatalf("headers %q and %q", a.Header, b.Header)
	}
	status, _ := get(t, b, a.Header, vaultQuery())
	if status != http.StatusUnauthorized {
		t.Fatalf("an old start's header worked on a new start: %d", status)
	}
}

func TestUserAssignedIdentityIsChosenByAnyOfItsIDs(t *testing.T) {
	s, d, _ := setup(t)
	uai, err := d.CreateUserAssignedIdentity(tenantID, uaiID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AssignUserAssignedIdentity(tenantID, site, uaiID); err != nil {
		t.Fatal(err)
	}
	e := start(t, s)
	for param, value := range map[string]string{"client_id": uai.AppID, "principal_id": uai.ObjectID, "object_id": uai.ObjectID, "mi_res_id": uaiID} {
		q := vaultQuery()
		q.Set(param, value)
		status, body := get(t, e, e.Header, q)
		if status != http.StatusOK || body["access_token"] != "token-for-"+uai.ObjectID {
			t.Errorf("%s: %d %v", param, status, body)
		}
	}
	status, body := get(t, e, e.Header, vaultQuery())
	if status != http.StatusBadRequest || !strings.Contains(body["message"].(string), "user-assigned") {
		t.Fatalf("no system identity and no ID named: %d %v", status, body)
	}
}

func TestBadRequestsAreExplained(t *testing.T) {
	s, d, _ := setup(t)
	d.EnableSystemAssignedIdentity(tenantID, site)
	e := start(t, s)
	cases := map[string]url.Values{
		"old api-version": {"api-version": {"2017-09-01"}, "resource": {"https://vault.azure.net"}},
		"no resource":     {"api-version": {APIVersion}},
		"scope":           {"api-version": {APIVersion}, "resource": {"https://vault.azure.net/.default"}},
		"unknown client":  {"api-version": {APIVersion}, "resource": {"https://vault.azure.net"}, "client_id": {"nope"}},
	}
	for name, q := range cases {
		status, body := get(t, e, e.Header, q)
		if status != http.StatusBadRequest || body["message"] == "" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
}

func TestDisabledIdentityGetsNoToken(t *testing.T) {
	s, d, _ := setup(t)
	d.EnableSystemAssignedIdentity(tenantID, site)
	e := start(t, s)
	if err := d.DisableSystemAssignedIdentity(site); err != nil {
		t.Fatal(err)
	}
	status, body := get(t, e, e.Header, vaultQuery())
	if status != http.StatusBadRequest || !strings.Contains(body["message"].(string), "az webapp identity assign") {
		t.Fatalf("%d %v", status, body)
	}
}

// TestUnmodifiedManagedIdentityCredentialUsesTheEndpoint drives the real azidentity credential
// with only the two variables App Service injects.
func TestUnmodifiedManagedIdentityCredentialUsesTheEndpoint(t *testing.T) {
	s, d, _ := setup(t)
	sp, _ := d.EnableSystemAssignedIdentity(tenantID, site)
	e := start(t, s)
	t.Setenv("IDENTITY_ENDPOINT", e.URL)
	t.Setenv("IDENTITY_HEADER", e.Header)
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token != "token-for-"+sp.ObjectID || e.Issued() != 1 {
		t.Fatalf("token %q, issued %d", tok.Token, e.Issued())
	}
}
