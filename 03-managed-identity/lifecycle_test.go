package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// wantPrincipalGone checks that the directory no longer has the principal and the resource has
// no system-assigned identity.
func wantPrincipalGone(t *testing.T, cloud *localcloud.Cloud, resource, objectID string) {
	t.Helper()
	if sp, ok := cloud.Directory.ServicePrincipal(objectID); ok {
		t.Errorf("service principal %s (%s) still exists", objectID, sp.DisplayName)
	}
	if id := cloud.Directory.IdentityOf(resource); id.SystemAssigned != nil {
		t.Errorf("%s still has a system-assigned identity: %s", resource, id.SystemAssigned.ObjectID)
	}
}

// wantRefresh makes the app read its secret again and checks the outcome line and /healthz.
func wantRefresh(t *testing.T, app *apptest.App, outcome string, health int) string {
	t.Helper()
	line := refresh(t, app)
	if !strings.Contains(line, outcome) {
		t.Fatalf("refresh logged %s, want %q", line, outcome)
	}
	if got, body := app.Get("/healthz"); got != health {
		t.Fatalf("/healthz = %d %s, want %d", got, body, health)
	}
	return line
}

// C12: disabling the identity deletes its principal, and the app loses access; enabling it
// again makes a new principal, which starts with no roles.
func TestDisablingTheIdentityDeletesItsPrincipalAndTheAppLosesAccess(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t, shortTokens)
	w := newWebApp(t, cloud, "app-c12")
	app := startApp(t, cloud, w.env()...)
	app.WaitLog("secret loaded")
	wantGet(t, app, "/healthz", http.StatusOK, "ok")

	// A token the identity already holds: disabling must make it useless too.
	held := tokenFrom(t, w.endpoint)
	if status, body := readSecretWith(t, cloud, held); status != http.StatusOK {
		t.Fatalf("the identity's token before disabling: %d %s", status, body)
	}

	if err := cloud.Directory.DisableSystemAssignedIdentity(w.resource); err != nil {
		t.Fatal(err)
	}
	wantPrincipalGone(t, cloud, w.resource, w.sp.ObjectID)
	if status, body := readSecretWith(t, cloud, held); status != http.StatusUnauthorized {
		t.Errorf("the deleted principal's token: %d %s, want 401", status, body)
	}
	wantRefresh(t, app, "reading the secret failed", http.StatusServiceUnavailable)

	// Enabling again registers a new principal. Roles belonged to the old one.
	sp := enableIdentity(t, cloud, w.resource)
	if sp.ObjectID == w.sp.ObjectID || sp.AppID == w.sp.AppID {
		t.Fatalf("re-enabling gave back the old principal %s", sp.ObjectID)
	}
	line := wantRefresh(t, app, "reading the secret failed", http.StatusServiceUnavailable)
	if !strings.Contains(line, "ForbiddenByRbac") || !strings.Contains(line, sp.ObjectID) {
		t.Errorf("the new principal should be refused by RBAC (403 ForbiddenByRbac naming %s): %s", sp.ObjectID, line)
	}
	grantSecretsUser(t, cloud, sp.ObjectID)
	wantRefresh(t, app, "secret loaded", http.StatusOK)
}

// C12: deleting the web app deletes its identity; a new app of the same name is someone else.
func TestDeletingTheAppDeletesItsIdentity(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	w := newWebApp(t, cloud, "app-c12-delete")
	app := startApp(t, cloud, w.env()...)
	app.WaitLog("secret loaded")
	held := tokenFrom(t, w.endpoint)

	// Deleting the app stops it and its token service, then removes what the platform made for it.
	app.Stop()
	w.endpoint.Close()
	if err := cloud.Directory.DeleteResource(w.resource); err != nil {
		t.Fatal(err)
	}
	wantPrincipalGone(t, cloud, w.resource, w.sp.ObjectID)
	if status, body := readSecretWith(t, cloud, held); status != http.StatusUnauthorized {
		t.Errorf("the deleted app's token: %d %s, want 401", status, body)
	}

	// An app created again under the same name gets a new principal, with none of the old roles.
	sp := enableIdentity(t, cloud, w.resource)
	if sp.ObjectID == w.sp.ObjectID {
		t.Fatalf("the new app has the deleted app's principal %s", sp.ObjectID)
	}
	if status, body := readSecretWith(t, cloud, tokenFrom(t, startEndpoint(t, cloud, w.resource))); status != http.StatusForbidden ||
		!strings.Contains(body, "ForbiddenByRbac") {
		t.Errorf("the new app's identity: %d %s, want 403 ForbiddenByRbac", status, body)
	}
}

// C13: the identity can be turned on and off again and again; every time it is turned on it
// is a new principal.
func TestIdentityCanBeSwitchedOnAndOffRepeatedly(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	resource := localcloud.WebAppResourceID("app-c13")
	seen := map[string]bool{}
	for cycle := 1; cycle <= 3; cycle++ {
		sp := enableIdentity(t, cloud, resource)
		if seen[sp.ObjectID] {
			t.Fatalf("cycle %d: enabling gave back principal %s from an earlier cycle", cycle, sp.ObjectID)
		}
		seen[sp.ObjectID] = true
		grantSecretsUser(t, cloud, sp.ObjectID)

		// The platform starts the app with the identity on.
		ep := startEndpoint(t, cloud, resource)
		app := startApp(t, cloud, ep.Env()...)
		if got := logField(app.WaitLog("signed in as a managed identity"), "oid"); got != sp.ObjectID {
			t.Fatalf("cycle %d: the app signed in as %q, want %q", cycle, got, sp.ObjectID)
		}
		app.WaitLog("secret loaded")
		wantGet(t, app, "/healthz", http.StatusOK, "ok")

		if err := cloud.Directory.DisableSystemAssignedIdentity(resource); err != nil {
			t.Fatal(err)
		}
		wantPrincipalGone(t, cloud, resource, sp.ObjectID)
		wantRefresh(t, app, "reading the secret failed", http.StatusServiceUnavailable)
		app.Stop()
		ep.Close()
	}
}
