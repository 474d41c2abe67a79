package main

// The proofs of what step 02 claims (see README.md). Each test runs its own local cloud, registers
// the app there, and runs the app built from this folder as a separate process with its
// credential in the environment.

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// assertServesSecret checks that the app read the secret and serves it.
func assertServesSecret(t *testing.T, app *apptest.App) {
	t.Helper()
	if status, body := app.Get("/api/SecretTest"); status != http.StatusOK || !strings.Contains(body, "Secret value: "+localcloud.SecretValue) {
		t.Errorf("GET /api/SecretTest = %d %q, want 200 with the secret", status, body)
	}
}

// assertCannotRead checks that the app has no secret to serve, and says why.
func assertCannotRead(t *testing.T, app *apptest.App, reason string) {
	t.Helper()
	if status, body := app.Get("/api/SecretTest"); status != http.StatusInternalServerError || !strings.Contains(body, reason) {
		t.Errorf("GET /api/SecretTest = %d %q, want 500 saying %s", status, body, reason)
	}
}

// C2: registering the app creates its service principal, an identity that can sign in and get
// a token for Key Vault; delete the registration and the identity is gone.
func TestRegistrationCreatesAServicePrincipalThatCanGetAToken(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	before := len(cloud.Directory.ServicePrincipals(localcloud.TenantID))

	app, err := cloud.RegisterApp("keyvault-bootstrapping-step02")
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := cloud.Directory.ServicePrincipalByAppID(localcloud.TenantID, app.ClientID)
	if !ok {
		t.Fatalf("no service principal for client ID %s", app.ClientID)
	}
	if sp.ObjectID != app.ObjectID || sp.ServicePrincipalType != directory.TypeApplication {
		t.Errorf("service principal %+v, want object ID %s of type %s", sp, app.ObjectID, directory.TypeApplication)
	}
	if after := len(cloud.Directory.ServicePrincipals(localcloud.TenantID)); after != before+1 {
		t.Errorf("%d service principals after registering, want %d", after, before+1)
	}

	running := startApp(t, cloud, secretEnv(app.ClientID, app.ClientSecret))
	claims := logFields(running.WaitLog("signed in as a service principal"))
	t.Logf("service principal %s; the app's token: appid=%s oid=%s appidacr=%s", sp.ObjectID, claims["appid"], claims["oid"], claims["appidacr"])
	want := map[string]string{
		"appid": app.ClientID, "oid": sp.ObjectID, "tid": localcloud.TenantID,
		"aud": "[https://vault.azure.net]", "appidacr": "1",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("the token's %s is %q, want %q", k, claims[k], v)
		}
	}
	running.WaitLog("reading the secret failed") // no role yet: that is the next test
	log := running.Log()
	if strings.Contains(log, app.ClientSecret) || strings.Contains(log, "eyJ") {
		t.Errorf("the app logged its secret or a token:\n%s", log)
	}

	// az ad app delete: the principal goes with the registration, and nothing signs in as it.
	if err := cloud.Directory.DeleteApplication(localcloud.TenantID, app.ClientID); err != nil {
		t.Fatal(err)
	}
	if line := running.Refresh(); !strings.Contains(line, "reading the secret failed") || !strings.Contains(line, "AADSTS700016") {
		t.Errorf("after deleting the registration, the refresh logged %q, want a failure with AADSTS700016", line)
	}
}

// C3: with an identity, the app can be given permission on the vault: the same principal is
// refused with 403 ForbiddenByRbac before the role assignment, reads the secret after it, and
// is refused again once the assignment is deleted.
func TestRoleAssignmentTurnsForbiddenIntoOK(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	app, err := cloud.RegisterApp("keyvault-bootstrapping-step02")
	if err != nil {
		t.Fatal(err)
	}
	running := startApp(t, cloud, secretEnv(app.ClientID, app.ClientSecret))
	line := running.WaitLog("reading the secret failed")
	for _, want := range []string{"403", "ForbiddenByRbac", "oid=" + app.ObjectID, "Key Vault Secrets User"} {
		if !strings.Contains(line, want) {
			t.Errorf("the failure %q does not say %q", line, want)
		}
	}
	assertCannotRead(t, running, "ForbiddenByRbac")

	// az role assignment create --role "Key Vault Secrets User" --assignee <client ID> --scope <vault ID>
	ra, err := cloud.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName))
	if err != nil {
		t.Fatal(err)
	}
	if line := running.Refresh(); !strings.Contains(line, "secret loaded") {
		t.Fatalf("after the role assignment, the refresh logged %q, want the secret loaded", line)
	}
	assertServesSecret(t, running)

	if err := cloud.Directory.DeleteRoleAssignment(ra.ID); err != nil {
		t.Fatal(err)
	}
	if line := running.Refresh(); !strings.Contains(line, "reading the secret failed") || !strings.Contains(line, "ForbiddenByRbac") {
		t.Errorf("after deleting the role assignment, the refresh logged %q, want a failure with ForbiddenByRbac", line)
	}
}

// Least privilege: a role assigned on one secret lets the app read that secret and nothing
// else; the same credential, copied into another process, is refused the rest of the vault.
func TestRoleOnOneSecretReadsOnlyThatSecret(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	const otherName = "StorageAccountKey"
	if _, err := cloud.KeyVault.SetSecret(localcloud.VaultName, otherName, "not-for-this-app"); err != nil {
		t.Fatal(err)
	}
	app, err := cloud.RegisterApp("keyvault-bootstrapping-step02")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.SecretScope(localcloud.VaultName, localcloud.SecretName)); err != nil {
		t.Fatal(err)
	}
	config := secretEnv(app.ClientID, app.ClientSecret)
	running := startApp(t, cloud, config)
	running.WaitLog("secret loaded")
	assertServesSecret(t, running)

	got := runThief(t, cloud, config, localcloud.SecretName, otherName)
	if got.Values[localcloud.SecretName] != localcloud.SecretValue {
		t.Errorf("with the app's credential, %s = %q (%s), want the secret", localcloud.SecretName, got.Values[localcloud.SecretName], got.Errors[localcloud.SecretName])
	}
	if v, ok := got.Values[otherName]; ok || !strings.Contains(got.Errors[otherName], "ForbiddenByRbac") {
		t.Errorf("with the app's credential, %s = %q, error %q; want 403 ForbiddenByRbac", otherName, v, got.Errors[otherName])
	}
	if !strings.Contains(got.ListError, "ForbiddenByRbac") {
		t.Errorf("listing the vault gave %q (listed %v), want 403 ForbiddenByRbac", got.ListError, got.Listed)
	}
}

// C5: the app proves who it is with a client secret or with a certificate; both get a token
// (appidacr 1 and 2) and both read the secret.
func TestSecretAndCertificateBothSignIn(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	withSecret := registerReader(t, cloud, "step02-with-secret")
	withCert, pemFile, err := cloud.RegisterAppWithCertificate("step02-with-certificate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(withCert.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		app      localcloud.App
		config   []string
		appidacr string
	}{
		{"secret", withSecret, secretEnv(withSecret.ClientID, withSecret.ClientSecret), "1"},
		{"certificate", withCert, certificateEnv(t, withCert.ClientID, pemFile), "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := startApp(t, cloud, tc.config)
			claims := logFields(running.WaitLog("signed in as a service principal"))
			if claims["oid"] != tc.app.ObjectID || claims["appidacr"] != tc.appidacr {
				t.Errorf("signed in as oid %q with appidacr %q, want %s with %s", claims["oid"], claims["appidacr"], tc.app.ObjectID, tc.appidacr)
			}
			running.WaitLog("secret loaded")
			assertServesSecret(t, running)
		})
	}
}

// C5: a wrong secret gets no token: Entra ID answers AADSTS7000215, and the app says so.
func TestWrongSecretFailsWithAADSTS7000215(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	running := startApp(t, cloud, secretEnv(app.ClientID, directory.GenerateClientSecret()))
	if line := running.WaitLog("getting a token for Key Vault failed"); !strings.Contains(line, "AADSTS7000215") {
		t.Errorf("the sign-in failure %q does not name AADSTS7000215", line)
	}
	assertCannotRead(t, running, "AADSTS7000215")
}

// C5: a client secret has an end date. The same secret that signed in is refused once it has
// expired, with AADSTS7000222, and the running app loses its access.
func TestExpiredSecretFailsWithAADSTS7000222(t *testing.T) {
	t.Parallel()
	var clock testClock
	cloud := localcloudtest.Start(t, shortTokens, clock.option)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	// az ad app credential reset --id <client ID> --end-date <in an hour>
	_, secret, err := cloud.Directory.ResetPasswords(localcloud.TenantID, app.ClientID,
		directory.SecretOptions{DisplayName: "short-lived", End: clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	running := startApp(t, cloud, secretEnv(app.ClientID, secret))
	running.WaitLog("secret loaded")

	clock.Advance(2 * time.Hour)
	if line := running.Refresh(); !strings.Contains(line, "reading the secret failed") || !strings.Contains(line, "AADSTS7000222") {
		t.Errorf("after the secret expired, the refresh logged %q, want a failure with AADSTS7000222", line)
	}
	if status, body := running.Get("/healthz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "AADSTS7000222") {
		t.Errorf("after the secret expired, /healthz = %d %q, want 503 with AADSTS7000222", status, body)
	}
}

// C5: a certificate that was never registered on the app proves nothing: AADSTS700027.
func TestUnregisteredCertificateFails(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	app, _, err := cloud.RegisterAppWithCertificate("keyvault-bootstrapping-step02")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}
	_, impostor, err := localcloud.NewClientCertificate("keyvault-bootstrapping-step02", cloud.Directory.Now())
	if err != nil {
		t.Fatal(err)
	}
	running := startApp(t, cloud, certificateEnv(t, app.ClientID, impostor))
	if line := running.WaitLog("getting a token for Key Vault failed"); !strings.Contains(line, "AADSTS700027") {
		t.Errorf("the sign-in failure %q does not name AADSTS700027", line)
	}
	assertCannotRead(t, running, "AADSTS700027")
}

// C5: without a credential there is no sign-in. The app stops at once and names the variables
// to set; Entra ID itself refuses a request that brings none with AADSTS7000216.
func TestMissingCredentialStopsTheAppNamingTheVariables(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	for _, tc := range []struct {
		name   string
		config []string
	}{
		{"nothing", []string{"AZURE_TENANT_ID="}},
		{"tenant only", nil},
		{"no secret or certificate", []string{"AZURE_CLIENT_ID=" + app.ClientID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), apptest.WaitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, appBinary(t))
			// The local cloud's environment names the tenant; the app treats an empty value as unset.
			cmd.Env = cloud.ChildEnv(os.Environ(), append(tc.config, "PORT=0")...)
			out, err := cmd.CombinedOutput()
			if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
				t.Fatalf("the app ended with %v, want exit status 1; output:\n%s", err, out)
			}
			for _, want := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("the app's error does not name %s:\n%s", want, out)
				}
			}
			if bytes.Contains(out, []byte("listening")) {
				t.Errorf("the app started serving without a credential:\n%s", out)
			}
		})
	}
	if _, code := newEntraClient(t, cloud).signIn(localcloud.TenantID, app.ClientID, ""); code != 7000216 {
		t.Errorf("Entra ID answered a sign-in with no credential with AADSTS%d, want AADSTS7000216", code)
	}
}

// C6: whoever copies the app's configuration is the app, to the vault. A separate process that
// never ran the app, holding only the copied values (a secret, or the certificate file), signs in
// as the app's principal and reads every secret the app may read, not just the one it needs.
func TestCopiedCredentialReadsTheVault(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	const otherName, otherValue = "StorageAccountKey", "not-for-this-app"
	if _, err := cloud.KeyVault.SetSecret(localcloud.VaultName, otherName, otherValue); err != nil {
		t.Fatal(err)
	}
	withSecret := registerReader(t, cloud, "step02-with-secret")
	withCert, pemFile, err := cloud.RegisterAppWithCertificate("step02-with-certificate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(withCert.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		app    localcloud.App
		copied []string
	}{
		{"secret", withSecret, secretEnv(withSecret.ClientID, withSecret.ClientSecret)},
		{"certificate", withCert, certificateEnv(t, withCert.ClientID, pemFile)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runThief(t, cloud, tc.copied)
			if got.SignInError != "" || got.ListError != "" {
				t.Fatalf("the copy was refused: %s %s", got.SignInError, got.ListError)
			}
			t.Logf("another process, signed in as oid %s, read %v", got.ObjectID, got.Values)
			if got.ObjectID != tc.app.ObjectID {
				t.Errorf("the vault saw the copy as %q, want the app's principal %s", got.ObjectID, tc.app.ObjectID)
			}
			want := map[string]string{localcloud.SecretName: localcloud.SecretValue, otherName: otherValue}
			for name, value := range want {
				if got.Values[name] != value {
					t.Errorf("the copy read %s = %q, want %q (errors: %v)", name, got.Values[name], value, got.Errors)
				}
			}
		})
	}
}

// C6: a token is as good as the credential while it lasts. A token copied out of another
// process reads the vault, even after the secret it came from is rotated, until it expires.
func TestCopiedTokenReadsTheVaultUntilItExpires(t *testing.T) {
	t.Parallel()
	var clock testClock
	cloud := localcloudtest.Start(t, shortTokens, clock.option)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	stolen := runThief(t, cloud, secretEnv(app.ClientID, app.ClientSecret)).Token
	if stolen == "" {
		t.Fatal("the other process got no token")
	}
	kv := newEntraClient(t, cloud)
	if status, body := kv.getSecret(stolen, localcloud.SecretName); status != http.StatusOK || !strings.Contains(body, localcloud.SecretValue) {
		t.Fatalf("the copied token: %d %s, want 200 with the secret", status, body)
	}

	if _, _, err := cloud.Directory.ResetPasswords(localcloud.TenantID, app.ClientID, directory.SecretOptions{DisplayName: "rotated"}); err != nil {
		t.Fatal(err)
	}
	if status, body := kv.getSecret(stolen, localcloud.SecretName); status != http.StatusOK {
		t.Errorf("after rotating the secret, the copied token: %d %s, want still 200", status, body)
	}

	clock.Advance(tokenExpired)
	if status, body := kv.getSecret(stolen, localcloud.SecretName); status != http.StatusUnauthorized || !strings.Contains(body, "TokenExpired") {
		t.Errorf("after it expired, the copied token: %d %s, want 401 TokenExpired", status, body)
	}
}

// C7: the credential lives in the app's environment, where anyone who can read the process (or
// its app settings) finds it, and from there it reads the vault.
func TestCredentialIsReadableFromTheAppsEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the environment of another process from /proc")
	}
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	running := startApp(t, cloud, secretEnv(app.ClientID, app.ClientSecret))
	running.WaitLog("secret loaded")

	environ, err := running.Environ()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(environ, "AZURE_CLIENT_SECRET="+app.ClientSecret) {
		t.Fatal("AZURE_CLIENT_SECRET is not in the app's environment")
	}
	var copied []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AZURE_CLIENT_") || strings.HasPrefix(kv, "AZURE_TENANT_ID=") {
			copied = append(copied, kv)
		}
	}
	if got := runThief(t, cloud, copied); got.Values[localcloud.SecretName] != localcloud.SecretValue {
		t.Errorf("with the values read from the app's environment: %+v, want the secret read", got)
	}
}

// C7: unlike step 01, the code holds no credential. The scan that recovers step 01's secret from
// its binary finds nothing here that signs in as any app of the tenant, the step 01 values are
// gone, and the secret the app runs with is not in the binary.
func TestBinaryHoldsNoCredential(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	lesson, err := os.ReadFile(lessonBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(appBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(lesson, []byte(app.ClientSecret)) || bytes.Contains(full, []byte(app.ClientSecret)) {
		t.Error("the app's client secret is in the binary")
	}
	for _, v := range []string{localcloud.Step01ClientSecret, localcloud.Step01ClientID, localcloud.TenantID} {
		if bytes.Contains(lesson, []byte(v)) {
			t.Errorf("the binary still holds step 01's %q", v)
		}
	}
	// Generous to the attacker: every secret-shaped string is tried for every app of the tenant,
	// as if the client IDs were known.
	kv := newEntraClient(t, cloud)
	candidates := secretCandidates(lesson)
	for _, a := range cloud.Directory.Applications(localcloud.TenantID) {
		for _, s := range candidates {
			if _, code := kv.signIn(localcloud.TenantID, a.AppID, s); code == 0 {
				t.Errorf("%q, found in the binary, signs in as %s", s, a.DisplayName)
			}
		}
	}
	t.Logf("tried %d secret-shaped strings from the binary", len(candidates))
}

// C7: the credential still lives outside the vault and must be rotated by hand. After a
// rotation the running app loses its access and a restart with the old configuration fails; the
// same binary works again only once the new secret is in its environment. The bootstrapping
// problem moved from the code to the configuration; it did not go away.
func TestRotatingTheSecretBreaksTheRunningApp(t *testing.T) {
	t.Parallel()
	var clock testClock
	cloud := localcloudtest.Start(t, shortTokens, clock.option)
	app := registerReader(t, cloud, "keyvault-bootstrapping-step02")
	oldConfig := secretEnv(app.ClientID, app.ClientSecret)
	running := startApp(t, cloud, oldConfig)
	running.WaitLog("secret loaded")

	// az ad app credential reset --id <client ID>: the old secret stops working at once; the
	// token the app holds lasts until it expires, and then the app must sign in again.
	_, newSecret, err := cloud.Directory.ResetPasswords(localcloud.TenantID, app.ClientID, directory.SecretOptions{DisplayName: "rotated"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(tokenExpired)
	if line := running.Refresh(); !strings.Contains(line, "reading the secret failed") || !strings.Contains(line, "AADSTS7000215") {
		t.Errorf("after the rotation, the refresh logged %q, want a failure with AADSTS7000215", line)
	}
	if status, body := running.Get("/healthz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "AADSTS7000215") {
		t.Errorf("after the rotation, /healthz = %d %q, want 503 with AADSTS7000215", status, body)
	}

	running.Stop()
	assertCannotRead(t, startApp(t, cloud, oldConfig), "AADSTS7000215")

	reconfigured := startApp(t, cloud, secretEnv(app.ClientID, newSecret))
	reconfigured.WaitLog("secret loaded")
	assertServesSecret(t, reconfigured)
}
