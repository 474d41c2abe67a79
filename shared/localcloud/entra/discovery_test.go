package entra

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

func TestInstanceDiscovery(t *testing.T) {
	e := newEnv(t)
	q := url.Values{"api-version": {"1.1"}, "authorization_endpoint": {"https://login.microsoftonline.com/" + testTenantID + "/oauth2/v2.0/authorize"}}
	w := e.do(http.MethodGet, "/common/discovery/instance?"+q.Encode(), "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got struct {
		TenantDiscoveryEndpoint string             `json:"tenant_discovery_endpoint"`
		APIVersion              string             `json:"api-version"`
		Metadata                []instanceMetadata `json:"metadata"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if want := "https://login.microsoftonline.com/" + testTenantID + "/v2.0/.well-known/openid-configuration"; got.TenantDiscoveryEndpoint != want {
		t.Errorf("tenant_discovery_endpoint = %q, want %q", got.TenantDiscoveryEndpoint, want)
	}
	if got.APIVersion != "1.1" || len(got.Metadata) != 1 || got.Metadata[0].PreferredNetwork != Host ||
		!slices.Contains(got.Metadata[0].Aliases, "login.windows.net") || !slices.Contains(got.Metadata[0].Aliases, Host) {
		t.Errorf("discovery = %+v", got)
	}

	q.Set("authorization_endpoint", "https://login.example.com/"+testTenantID+"/oauth2/v2.0/authorize")
	w = e.do(http.MethodGet, "/common/discovery/instance?"+q.Encode(), "", nil)
	wantAADError(t, w, http.StatusBadRequest, "invalid_instance", 50049)
}

func TestOpenIDConfiguration(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/"+testTenantID+"/v2.0/.well-known/openid-configuration", "", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	m := decodeJSON(t, w.Body.Bytes())
	base := "https://login.microsoftonline.com/" + testTenantID
	for k, want := range map[string]string{
		"issuer":                 base + "/v2.0",
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"jwks_uri":               base + "/discovery/v2.0/keys",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %s", k, m[k], want)
		}
	}
	methods, _ := m["token_endpoint_auth_methods_supported"].([]any)
	for _, want := range []string{"client_secret_post", "private_key_jwt", "client_secret_basic"} {
		if !slices.Contains(methods, any(want)) {
			t.Errorf("token_endpoint_auth_methods_supported %v lacks %s", methods, want)
		}
	}
	if algs, _ := m["id_token_signing_alg_values_supported"].([]any); !slices.Equal(algs, []any{"RS256"}) {
		t.Errorf("id_token_signing_alg_values_supported = %v", algs)
	}
	for _, k := range []string{"response_types_supported", "subject_types_supported", "tenant_region_scope"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}

	w = e.do(http.MethodGet, "/common/v2.0/.well-known/openid-configuration", "", nil)
	if m := decodeJSON(t, w.Body.Bytes()); w.Code != http.StatusOK || m["issuer"] != "https://login.microsoftonline.com/{tenantid}/v2.0" {
		t.Errorf("common: %d %v", w.Code, m["issuer"])
	}

	w = e.do(http.MethodGet, "/00000000-1111-2222-3333-444444444444/v2.0/.well-known/openid-configuration", "", nil)
	wantAADError(t, w, http.StatusBadRequest, "invalid_tenant", 90002)
}

// jwkPublicKey rebuilds an RSA key from a JWKS entry, as a resource server would.
func jwkPublicKey(t *testing.T, k map[string]any) *rsa.PublicKey {
	t.Helper()
	n, err1 := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, err2 := base64.RawURLEncoding.DecodeString(k["e"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("n/e not base64url: %v %v", err1, err2)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func TestJWKSVerifiesIssuedToken(t *testing.T) {
	e := newEnv(t)
	at, err := e.svc.IssueAccessToken(e.sp, vaultResource, ACRSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/" + testTenantID + "/discovery/v2.0/keys",
		"/" + testTenantID + "/discovery/keys",
		"/common/discovery/keys",
		"/common/discovery/v2.0/keys",
	} {
		t.Run(path, func(t *testing.T) {
			w := e.do(http.MethodGet, path, "", nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			keys, _ := decodeJSON(t, w.Body.Bytes())["keys"].([]any)
			if len(keys) != 1 {
				t.Fatalf("keys = %v", keys)
			}
			k := keys[0].(map[string]any)
			if k["kty"] != "RSA" || k["use"] != "sig" || k["kid"] != e.svc.signer.KeyID() {
				t.Fatalf("key = %v", k)
			}
			pub := jwkPublicKey(t, k)
			tok, err := jwt.Parse(at.Token, func(tok *jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
			if err != nil || tok.Header["kid"] != k["kid"] {
				t.Fatalf("token does not verify with the published key: %v (kid %v)", err, tok.Header["kid"])
			}
		})
	}
	w := e.do(http.MethodGet, "/00000000-1111-2222-3333-444444444444/discovery/v2.0/keys", "", nil)
	wantAADError(t, w, http.StatusBadRequest, "invalid_tenant", 90002)
}

func TestUnknownPathsAndMethods(t *testing.T) {
	e := newEnv(t)
	if w := e.do(http.MethodGet, "/"+testTenantID+"/oauth2/v2.0/authorize", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("authorize: status %d, want 404", w.Code)
	}
	w := e.do(http.MethodPost, "/"+testTenantID+"/v2.0/.well-known/openid-configuration", "", nil)
	wantAADError(t, w, http.StatusBadRequest, "invalid_request", 900561)
	w = e.do(http.MethodGet, tokenPath(testTenantID), "", nil)
	wantAADError(t, w, http.StatusBadRequest, "invalid_request", 900561)
	if n := e.svc.TokenRequests(); n != 0 {
		t.Errorf("TokenRequests = %d after a GET, want 0: only POSTs count", n)
	}
}
