package entra

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

func TestClientSecretSuccess(t *testing.T) {
	e := newEnv(t)
	tr := decodeTokenResponse(t, e.postToken(e.secretForm()))
	c, err := e.svc.ValidateAccessToken(tr.AccessToken, vaultResource)
	if err != nil {
		t.Fatal(err)
	}
	if c.AppID != e.app.AppID || c.ObjectID != e.sp.ObjectID || c.TenantID != testTenantID || c.AppIDACR != ACRSecret ||
		c.Audience != vaultResource || c.Issuer != "https://sts.windows.net/"+testTenantID+"/" {
		t.Errorf("claims = %+v", c)
	}
	if got := e.svc.TokenRequests(); got != 1 {
		t.Errorf("TokenRequests = %d, want 1", got)
	}
}

func TestClientSecretBasic(t *testing.T) {
	e := newEnv(t)
	form := e.secretForm()
	form.Del("client_secret")
	form.Del("client_id")
	h := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(e.app.AppID)+":"+url.QueryEscape(e.secret)))}}
	tr := decodeTokenResponse(t, e.do(http.MethodPost, tokenPath(testTenantID), form.Encode(), h))
	if _, err := e.svc.ValidateAccessToken(tr.AccessToken, vaultResource); err != nil {
		t.Fatal(err)
	}
	h = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(e.app.AppID+":wrong"))}}
	wantAADError(t, e.do(http.MethodPost, tokenPath(testTenantID), form.Encode(), h), http.StatusUnauthorized, "invalid_client", 7000215)
}

func TestScopeForms(t *testing.T) {
	e := newEnv(t)
	for scope, aud := range map[string]string{
		"https://vault.azure.net/.default":              "https://vault.azure.net",
		"https://vault.azure.net//.default openid":      "https://vault.azure.net",
		"openid https://management.azure.com/.default":  "https://management.azure.com",
		"api://" + testTenantID + "/.default profile":   "api://" + testTenantID,
		"00000002-0000-0000-c000-000000000000/.default": "00000002-0000-0000-c000-000000000000",
	} {
		form := e.secretForm()
		form.Set("scope", scope)
		tr := decodeTokenResponse(t, e.postToken(form))
		if _, err := e.svc.ValidateAccessToken(tr.AccessToken, aud); err != nil {
			t.Errorf("scope %q: %v", scope, err)
		}
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	noSP, err := e.dir.CreateApplication(testTenantID, "no-sp", "")
	if err != nil {
		t.Fatal(err)
	}
	_, noSPSecret, err := e.dir.AddPassword(testTenantID, noSP.AppID, directory.SecretOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, expired, err := e.dir.AddPassword(testTenantID, e.app.AppID, directory.SecretOptions{
		Start: e.clock.Now().Add(-48 * time.Hour), End: e.clock.Now().Add(-time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	unknownApp := uuid.NewString()
	unknownTenant := uuid.NewString()

	tests := []struct {
		name     string
		tenant   string
		edit     func(url.Values)
		status   int
		oauth    string
		code     int
		mentions []string // what a learner needs to see in the message
	}{
		{"wrong secret", testTenantID, func(f url.Values) { f.Set("client_secret", "not-the-secret") }, 401, "invalid_client", 7000215, []string{e.app.AppID}},
		{"expired secret", testTenantID, func(f url.Values) { f.Set("client_secret", expired) }, 401, "invalid_client", 7000222, []string{e.app.AppID}},
		{"unknown app", testTenantID, func(f url.Values) { f.Set("client_id", unknownApp) }, 400, "unauthorized_client", 700016, []string{unknownApp, testTenantID, "Contoso"}},
		{"unknown app without credential", testTenantID, func(f url.Values) { f.Set("client_id", unknownApp); f.Del("client_secret") }, 400, "unauthorized_client", 700016, []string{unknownApp}},
		{"unknown tenant", unknownTenant, nil, 400, "invalid_request", 90002, []string{unknownTenant}},
		{"app without service principal", testTenantID, func(f url.Values) { f.Set("client_id", noSP.AppID); f.Set("client_secret", noSPSecret) }, 401, "invalid_client", 7000229, []string{noSP.AppID, "az ad sp create"}},
		{"no credential", testTenantID, func(f url.Values) { f.Del("client_secret") }, 401, "invalid_client", 7000216, []string{"client_secret"}},
		{"no grant_type", testTenantID, func(f url.Values) { f.Del("grant_type") }, 400, "invalid_request", 900144, []string{"grant_type"}},
		{"password grant", testTenantID, func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003, []string{"password"}},
		{"no client_id", testTenantID, func(f url.Values) { f.Del("client_id") }, 400, "invalid_request", 900144, []string{"client_id"}},
		{"no scope", testTenantID, func(f url.Values) { f.Del("scope") }, 400, "invalid_scope", 70011, []string{"scope"}},
		{"scope without .default", testTenantID, func(f url.Values) { f.Set("scope", "https://vault.azure.net/secrets.read") }, 400, "invalid_scope", 1002012, []string{"/.default"}},
		{"only openid scopes", testTenantID, func(f url.Values) { f.Set("scope", "openid profile") }, 400, "invalid_scope", 1002012, nil},
		{"two resources", testTenantID, func(f url.Values) { f.Set("scope", vaultScope+" https://management.azure.com/.default") }, 400, "invalid_scope", 70011, nil},
		{"resource not a URI", testTenantID, func(f url.Values) { f.Set("scope", "vault/.default") }, 400, "invalid_scope", 70011, nil},
		{"common authority", "common", nil, 400, "invalid_request", 50059, []string{"tenant"}},
		{"secret and assertion", testTenantID, func(f url.Values) { f.Set("client_assertion_type", jwtBearer); f.Set("client_assertion", "x.y.z") }, 400, "invalid_request", 90100, nil},
		{"assertion without type", testTenantID, func(f url.Values) { f.Del("client_secret"); f.Set("client_assertion", "x.y.z") }, 400, "invalid_request", 900144, []string{"client_assertion_type"}},
		{"assertion of another type", testTenantID, func(f url.Values) {
			f.Del("client_secret")
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			f.Set("client_assertion", "x")
		}, 400, "invalid_request", 90100, []string{jwtBearer}},
		{"assertion type without assertion", testTenantID, func(f url.Values) { f.Del("client_secret"); f.Set("client_assertion_type", jwtBearer) }, 400, "invalid_request", 900144, []string{"client_assertion"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := e.secretForm()
			if tt.edit != nil {
				tt.edit(form)
			}
			corr := uuid.NewString()
			w := e.do(http.MethodPost, tokenPath(tt.tenant), form.Encode(), http.Header{"Client-Request-Id": {corr}})
			b := wantAADError(t, w, tt.status, tt.oauth, tt.code)
			if b.CorrelationID != corr {
				t.Errorf("correlation_id = %s, want the client-request-id %s", b.CorrelationID, corr)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(b.Description, m) {
					t.Errorf("description %q does not mention %q", b.Description, m)
				}
			}
			if strings.Contains(w.Body.String(), e.secret) {
				t.Error("the error echoes the client secret")
			}
		})
	}
	if got, want := e.svc.TokenRequests(), int64(len(tests)); got != want {
		t.Errorf("TokenRequests = %d, want %d (failures count too)", got, want)
	}
}

func TestTokenRequestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	form := e.secretForm()
	form.Set("padding", strings.Repeat("a", maxTokenRequestBody))
	wantAADError(t, e.postToken(form), http.StatusRequestEntityTooLarge, "invalid_request", 90004)
}

func TestCertificateAssertionSuccess(t *testing.T) {
	e := newEnv(t)
	t.Run("MSAL: PS256 with x5t#S256 in standard base64", func(t *testing.T) {
		tr := decodeTokenResponse(t, e.postToken(e.assertionForm(msalAssertion(t, appCert(), e.assertionClaims()))))
		c, err := e.svc.ValidateAccessToken(tr.AccessToken, vaultResource)
		if err != nil {
			t.Fatal(err)
		}
		if c.AppIDACR != ACRCertificate || c.ObjectID != e.sp.ObjectID || c.AppID != e.app.AppID {
			t.Errorf("claims = %+v", c)
		}
	})
	t.Run("ADFS style: RS256 with SHA-1 x5t in base64url", func(t *testing.T) {
		sum := sha1.Sum(appCert().cert.Raw)
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, e.assertionClaims())
		tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
		raw, err := tok.SignedString(appCert().key)
		if err != nil {
			t.Fatal(err)
		}
		decodeTokenResponse(t, e.postToken(e.assertionForm(raw)))
	})
	t.Run("v1 token endpoint audience", func(t *testing.T) {
		c := e.assertionClaims()
		c["aud"] = "https://login.microsoftonline.com/" + testTenantID + "/oauth2/token"
		decodeTokenResponse(t, e.postToken(e.assertionForm(msalAssertion(t, appCert(), c))))
	})
}

func TestCertificateAssertionRefused(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	withClaim := func(k string, v any) string {
		c := e.assertionClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return msalAssertion(t, appCert(), c)
	}
	otherApp := uuid.NewString()
	tests := []struct {
		name      string
		assertion func() string
		status    int
		oauth     string
		code      int
		mentions  string
	}{
		{"unregistered certificate", func() string { return msalAssertion(t, strangeCert(), e.assertionClaims()) }, 401, "invalid_client", 700027, "The key was not found"},
		{"bad signature", func() string {
			// The registered certificate's thumbprint, signed with another key.
			return msalAssertion(t, testCert{key: otherRSAKey(), cert: appCert().cert}, e.assertionClaims())
		}, 401, "invalid_client", 700027, "signature validation"},
		{"tampered claims", func() string {
			parts := strings.Split(msalAssertion(t, appCert(), e.assertionClaims()), ".")
			other := strings.Split(withClaim("exp", now.Add(20*time.Minute).Unix()), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, 401, "invalid_client", 700027, "signature validation"},
		{"wrong audience", func() string {
			return withClaim("aud", "https://login.microsoftonline.com/"+otherTenantID+"/oauth2/v2.0/token")
		}, 401, "invalid_client", 50012, "/" + testTenantID + "/oauth2/v2.0/token"},
		{"expired", func() string { return withClaim("exp", now.Add(-10*time.Minute).Unix()) }, 401, "invalid_client", 700024, "valid time range"},
		{"not yet valid", func() string { return withClaim("nbf", now.Add(10*time.Minute).Unix()) }, 401, "invalid_client", 700024, "valid time range"},
		{"valid for too long", func() string { return withClaim("exp", now.Add(48*time.Hour).Unix()) }, 401, "invalid_client", 700024, "at most a day"},
		{"issuer is another app", func() string {
			c := e.assertionClaims()
			c["iss"], c["sub"] = otherApp, otherApp
			return msalAssertion(t, appCert(), c)
		}, 401, "invalid_client", 700021, "client_id"},
		{"subject differs from issuer", func() string { return withClaim("sub", otherApp) }, 401, "invalid_client", 50048, "Subject"},
		{"no jti", func() string { return withClaim("jti", nil) }, 400, "invalid_request", 50027, "jti"},
		{"no exp", func() string { return withClaim("exp", nil) }, 400, "invalid_request", 50027, "exp"},
		{"HS256", func() string {
			sum := appCert().cert.Raw
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, e.assertionClaims())
			tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:20])
			s, _ := tok.SignedString([]byte("key"))
			return s
		}, 401, "invalid_client", 700027, "HS256"},
		{"no thumbprint", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodPS256, e.assertionClaims())
			s, _ := tok.SignedString(appCert().key)
			return s
		}, 401, "invalid_client", 700027, "x5t"},
		{"not a JWT", func() string { return "not-a-jwt" }, 400, "invalid_request", 50027, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := wantAADError(t, e.postToken(e.assertionForm(tt.assertion())), tt.status, tt.oauth, tt.code)
			if !strings.Contains(b.Description, tt.mentions) {
				t.Errorf("description %q does not mention %q", b.Description, tt.mentions)
			}
		})
	}
}

func TestCertificateAssertionReplay(t *testing.T) {
	e := newEnv(t)
	assertion := msalAssertion(t, appCert(), e.assertionClaims())
	decodeTokenResponse(t, e.postToken(e.assertionForm(assertion)))
	b := wantAADError(t, e.postToken(e.assertionForm(assertion)), http.StatusUnauthorized, "invalid_client", 50013)
	if !strings.Contains(b.Description, "already used") {
		t.Errorf("description %q", b.Description)
	}
	// A new assertion (new jti) from the same client is fine.
	decodeTokenResponse(t, e.postToken(e.assertionForm(msalAssertion(t, appCert(), e.assertionClaims()))))
}

func TestReplayCacheForgetsExpiredEntries(t *testing.T) {
	var c replayCache
	now := time.Unix(1_800_000_000, 0)
	for i := range 100 {
		if !c.firstUse(uuid.NewString(), now.Add(time.Duration(i)*time.Second), now) {
			t.Fatal("a new jti was refused")
		}
	}
	if !c.firstUse("kept", now.Add(time.Hour), now) || c.firstUse("kept", now.Add(time.Hour), now.Add(30*time.Minute)) {
		t.Fatal("a jti was not remembered within its lifetime")
	}
	c.firstUse("trigger", now.Add(2*time.Hour), now.Add(10*time.Minute))
	if len(c.seen) != 2 {
		t.Errorf("cache holds %d entries after the sweep, want 2 (the expired ones forgotten)", len(c.seen))
	}
	if !c.firstUse("kept", now.Add(3*time.Hour), now.Add(61*time.Minute)) {
		t.Error("a jti past its expiry still counts as used")
	}
}

func TestRequestLog(t *testing.T) {
	e := newEnv(t)
	tr := decodeTokenResponse(t, e.postToken(e.secretForm()))
	bad := e.secretForm()
	bad.Set("client_secret", "wrong-secret-value")
	e.postToken(bad)
	logs := e.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per request, got %d:\n%s", len(lines), logs)
	}
	for _, want := range []string{"service=entra", "method=POST", "path=/" + testTenantID + "/oauth2/v2.0/token", "status=200", "appid=" + e.app.AppID} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "status=401") || !strings.Contains(lines[1], "error=AADSTS7000215") {
		t.Errorf("failure log line %q lacks status or error code", lines[1])
	}
	for _, secret := range []string{e.secret, "wrong-secret-value", tr.AccessToken} {
		if strings.Contains(logs, secret) {
			t.Error("the log contains a secret or a token")
		}
	}
}
