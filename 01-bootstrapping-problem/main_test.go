package main

// The proofs of what step 01 claims (see README.md). Each test runs its own local cloud and, where
// it needs one, the app built from this folder as a separate process.

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// wantChallenge is the Bearer challenge of a vault in the local tenant: it names the Entra ID
// authority to get a token from and the resource the token must be for.
var wantChallenge = []string{
	`authorization="https://login.microsoftonline.com/` + localcloud.TenantID + `"`,
	`resource="https://vault.azure.net"`,
}

func assertRefused(t *testing.T, r vaultResponse, reason string) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401; body: %s", r.status, r.body)
	}
	if !strings.HasPrefix(r.challenge, "Bearer ") {
		t.Errorf("WWW-Authenticate %q is not a Bearer challenge", r.challenge)
	}
	for _, want := range wantChallenge {
		if !strings.Contains(r.challenge, want) {
			t.Errorf("WWW-Authenticate %q does not name %s", r.challenge, want)
		}
	}
	if strings.Contains(r.body, localcloud.SecretValue) || strings.Contains(r.body, `"value"`) {
		t.Errorf("a refused request got a secret back: %s", r.body)
	}
	if !strings.Contains(r.body, reason) {
		t.Errorf("refusal %s does not say %q", r.body, reason)
	}
}

// C1: Key Vault has no anonymous access. A caller with no token learns only where to get one.
func TestVaultRefusesAnonymousCallersWithAChallenge(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	kv := newEntraClient(t, cloud)

	r := kv.getSecret("", localcloud.SecretName)
	t.Logf("no token: %d, WWW-Authenticate: %s", r.status, r.challenge)
	assertRefused(t, r, "AKV10000")
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error.Code != "Unauthorized" {
		t.Errorf("body %s is not Key Vault's Unauthorized error (%v)", r.body, err)
	}
}

// The app works: with the secret written into main.go it signs in, reads SecretPassword and
// serves it.
func TestAppServesTheSecret(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	app := startApp(t, cloud)
	app.WaitLog("secret loaded")

	status, body := app.Get("/api/SecretTest")
	if status != http.StatusOK || !strings.Contains(body, "Secret value: "+localcloud.SecretValue) {
		t.Errorf("GET /api/SecretTest = %d %q, want 200 with the secret", status, body)
	}
	if status, body := app.Get("/healthz"); status != http.StatusOK || !strings.HasPrefix(body, "ok: ") {
		t.Errorf("GET /healthz = %d %q, want 200 ok", status, body)
	}
	if strings.Contains(app.Log(), localcloud.SecretValue) {
		t.Errorf("the app logged the secret's value:\n%s", app.Log())
	}
}

// C4: the vault checks the token's signature. Changing who the token says it is, here into the
// developer, who may also write and delete secrets, makes it worthless.
func TestVaultRefusesATamperedToken(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	kv := newEntraClient(t, cloud)
	token, code := kv.signIn(localcloud.TenantID, localcloud.Step01ClientID, localcloud.Step01ClientSecret)
	if code != 0 {
		t.Fatalf("signing in as the step 01 app: AADSTS%d", code)
	}
	dev, ok := cloud.Directory.ServicePrincipalByAppID(localcloud.TenantID, localcloud.DeveloperClientID)
	if !ok || !cloud.Directory.IsAllowed(dev.ObjectID, directory.ActionSetSecret, localcloud.VaultResourceID(localcloud.VaultName)) {
		t.Fatal("the developer principal should exist and be allowed to write secrets")
	}

	parts := strings.Split(token, ".")
	payload, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["oid"], claims["sub"], claims["appid"] = dev.ObjectID, dev.ObjectID, dev.AppID
	forged, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	assertRefused(t, kv.getSecret(tampered, localcloud.SecretName), "AKV10046")
	if r := kv.getSecret(token, localcloud.SecretName); r.status != http.StatusOK || !strings.Contains(r.body, localcloud.SecretValue) {
		t.Errorf("the untampered token: %d %s, want 200 with the secret", r.status, r.body)
	}
}

// C4: only a token signed by the tenant's Entra ID, unexpired, issued for Key Vault and in the
// vault's own tenant opens the vault. Every case below is refused with the challenge.
func TestVaultAcceptsOnlyASignedUnexpiredTokenForItselfAndItsTenant(t *testing.T) {
	t.Parallel()
	var clock testClock
	cloud := localcloudtest.Start(t, clock.option)
	kv := newEntraClient(t, cloud)
	sp, ok := cloud.Directory.ServicePrincipalByAppID(localcloud.TenantID, localcloud.Step01ClientID)
	if !ok {
		t.Fatal("no service principal for the step 01 app")
	}
	issue := func(sp directory.ServicePrincipal, resource string) string {
		t.Helper()
		at, err := cloud.Entra.IssueAccessToken(sp, resource, entra.ACRSecret)
		if err != nil {
			t.Fatal(err)
		}
		return at.Token
	}
	valid := issue(sp, keyvault.Audience)
	parts := strings.Split(valid, ".")
	payload, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}

	// The same claims, signed by a key that is not Entra ID's, under Entra ID's key ID.
	var claims jwt.MapClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	header, err := decodeSegment(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(header, &h); err != nil || h.Kid == "" {
		t.Fatalf("token header %s has no kid (%v)", header, err)
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgery := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	forgery.Header["kid"] = h.Kid
	signedElsewhere, err := forgery.SignedString(otherKey)
	if err != nil {
		t.Fatal(err)
	}

	// Issued two hours ago for an hour.
	clock.Advance(-2 * time.Hour)
	expired := issue(sp, keyvault.Audience)
	clock.Advance(2 * time.Hour)

	// A principal of another tenant, even with a role on the vault.
	const otherTenant = "20ca1c10-0000-4000-a000-000000000000"
	if _, err := cloud.Directory.AddTenant(otherTenant, "Elsewhere"); err != nil {
		t.Fatal(err)
	}
	otherApp, err := cloud.Directory.CreateApplication(otherTenant, "elsewhere", "")
	if err != nil {
		t.Fatal(err)
	}
	otherSP, err := cloud.Directory.CreateServicePrincipal(otherTenant, otherApp.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(otherSP.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, token, reason string }{
		{"signed by another key", signedElsewhere, "AKV10046"},
		{"unsigned (alg none)", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", "AKV10046"},
		{"expired", expired, "TokenExpired"},
		{"for another resource", issue(sp, "https://storage.azure.com"), "AKV10022"},
		{"from another tenant", issue(otherSP, keyvault.Audience), "AKV10032"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertRefused(t, newEntraClient(t, cloud).getSecret(tc.token, localcloud.SecretName), tc.reason)
		})
	}
	if r := kv.getSecret(valid, localcloud.SecretName); r.status != http.StatusOK {
		t.Errorf("the valid token: %d %s, want 200", r.status, r.body)
	}
}

// C6: whoever copies the secret is the app, to the vault. A separate process that never ran the
// app, holding only the tenant, client ID and secret recovered from the binary, lists the vault
// and reads every secret in it, not just the one the app needs.
func TestCopiedSecretReadsEverySecretTheAppMayRead(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	const otherName, otherValue = "StorageAccountKey", "not-for-this-app"
	if _, err := cloud.KeyVault.SetSecret(localcloud.VaultName, otherName, otherValue); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(lessonBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	copied, ok := newEntraClient(t, cloud).recoverCredential(bin)
	if !ok {
		t.Fatal("no credential found in the binary")
	}

	got := runThief(t, cloud, copied)
	if got.SignInError != "" || got.ListError != "" {
		t.Fatalf("the thief was refused: %s %s", got.SignInError, got.ListError)
	}
	t.Logf("another process, signed in as oid %s, listed %v and read %v", got.ObjectID, got.Listed, got.Values)
	want := map[string]string{localcloud.SecretName: localcloud.SecretValue, otherName: otherValue}
	for name, value := range want {
		if got.Values[name] != value {
			t.Errorf("the thief read %s = %q, want %q (errors: %v)", name, got.Values[name], value, got.Errors)
		}
	}
	app, _ := cloud.Directory.ServicePrincipalByAppID(localcloud.TenantID, localcloud.Step01ClientID)
	if got.ObjectID != app.ObjectID {
		t.Errorf("the vault saw the thief as %q, want the app's principal %s", got.ObjectID, app.ObjectID)
	}
}

// C7: the secret is in the built program. Knowing nothing in advance, a scan of the bytes for
// GUIDs and secret-shaped strings, checked against Entra ID's error codes, recovers the tenant,
// the client ID and the secret, and they sign in.
func TestSecretIsRecoverableFromTheBuiltBinary(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	bin, err := os.ReadFile(lessonBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bin, []byte(localcloud.Step01ClientSecret)) {
		t.Error("the secret written in main.go is not in the bytes of the binary")
	}
	got, ok := newEntraClient(t, cloud).recoverCredential(bin)
	if !ok {
		t.Fatal("no working credential recovered from the binary")
	}
	t.Logf("recovered from the %d bytes of the binary: tenant %s, client ID %s, secret %s", len(bin), got.tenantID, got.clientID, got.secret)
	want := recoveredCredential{localcloud.TenantID, localcloud.Step01ClientID, localcloud.Step01ClientSecret}
	if got != want {
		t.Errorf("recovered %+v, want %+v", got, want)
	}
}

// C7: the secret can only be changed by changing the program. Once it is rotated in Entra ID,
// the running app can no longer refresh, a restart of the same binary cannot read the secret at
// all, and only a binary rebuilt with the new secret pasted into main.go works again.
func TestRotatingTheSecretBreaksTheRunningAppUntilRebuilt(t *testing.T) {
	t.Parallel()
	var clock testClock
	cloud := localcloudtest.Start(t, shortTokens, clock.option)
	app := startApp(t, cloud)
	app.WaitLog("secret loaded")
	if status, body := app.Get("/healthz"); status != http.StatusOK {
		t.Fatalf("before the rotation, /healthz = %d %q", status, body)
	}

	// az ad app credential reset --id <client ID>: the old secret stops working at once. The
	// token the app already holds stays valid until it expires; the vault then refuses it, and
	// the app must sign in again with the secret it was built with.
	_, newSecret, err := cloud.Directory.ResetPasswords(localcloud.TenantID, localcloud.Step01ClientID, directory.SecretOptions{DisplayName: "rotated"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(tokenExpired)

	if line := app.Refresh(); !strings.Contains(line, "reading the secret failed") || !strings.Contains(line, "AADSTS7000215") {
		t.Errorf("after the rotation, the refresh logged %q, want a failure with AADSTS7000215", line)
	}
	if status, body := app.Get("/healthz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "AADSTS7000215") {
		t.Errorf("after the rotation, /healthz = %d %q, want 503 with AADSTS7000215", status, body)
	}

	app.Stop()
	restarted := startApp(t, cloud)
	if status, body := restarted.Get("/api/SecretTest"); status != http.StatusInternalServerError || !strings.Contains(body, "AADSTS7000215") {
		t.Errorf("the same binary restarted: /api/SecretTest = %d %q, want 500 with AADSTS7000215", status, body)
	}

	rebuilt := apptest.Start(t, rebuildWithSecret(t, newSecret), cloud.ChildEnv(os.Environ()))
	rebuilt.WaitLog("secret loaded")
	if status, body := rebuilt.Get("/api/SecretTest"); status != http.StatusOK || !strings.Contains(body, localcloud.SecretValue) {
		t.Errorf("the rebuilt binary: /api/SecretTest = %d %q, want 200 with the secret", status, body)
	}
}

// rebuildWithSecret builds this step with the new secret pasted into main.go, without touching
// the file: `go build -overlay` reads an edited copy in its place.
func rebuildWithSecret(t *testing.T, secret string) string {
	t.Helper()
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	old := "clientSecret = " + strconv.Quote(localcloud.Step01ClientSecret)
	if !bytes.Contains(src, []byte(old)) {
		t.Fatalf("main.go has no line %q to edit", old)
	}
	edited := bytes.Replace(src, []byte(old), []byte("clientSecret = "+strconv.Quote(secret)), 1)
	dir := t.TempDir()
	mainPath, err := filepath.Abs("main.go")
	if err != nil {
		t.Fatal(err)
	}
	editedPath := filepath.Join(dir, "main.go")
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {mainPath: editedPath}})
	if err != nil {
		t.Fatal(err)
	}
	overlayPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(editedPath, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(overlayPath, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	goBuild(t, bin, "-overlay", overlayPath, ".")
	return bin
}
