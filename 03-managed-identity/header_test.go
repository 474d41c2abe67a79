package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// C10: calling the token service takes a secret, the header the platform injected.
func TestIdentityEndpointRefusesCallsWithoutTheInjectedHeader(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	w := newWebApp(t, cloud, "app-c10")
	other := newWebApp(t, cloud, "app-c10-other")

	guess := make([]byte, 32)
	rand.Read(guess)
	for _, tc := range []struct {
		name    string
		headers map[string]string
	}{
		{"no header", nil},
		{"an empty header", map[string]string{"X-IDENTITY-HEADER": ""}},
		{"a guessed header", map[string]string{"X-IDENTITY-HEADER": hex.EncodeToString(guess)}},
		{"the header in upper case", map[string]string{"X-IDENTITY-HEADER": strings.ToUpper(w.endpoint.Header)}},
		{"another app's header", map[string]string{"X-IDENTITY-HEADER": other.endpoint.Header}},
		{"the VM metadata service's header", map[string]string{"Metadata": "true"}},
		{"the header under Service Fabric's name", map[string]string{"Secret": w.endpoint.Header}},
	} {
		status, body, err := askForToken(w.endpoint.URL, tc.headers)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if status != http.StatusUnauthorized || strings.Contains(body, "access_token") {
			t.Errorf("%s: %d %s, want 401 and no token", tc.name, status, body)
		}
	}
	if n := w.endpoint.Issued(); n != 0 {
		t.Errorf("the endpoint gave out %d tokens to callers without its header", n)
	}

	// The same request with the injected header gets a token: the header is what made the difference.
	if status, body, err := askForToken(w.endpoint.URL, map[string]string{"X-IDENTITY-HEADER": w.endpoint.Header}); err != nil ||
		status != http.StatusOK || !strings.Contains(body, `"access_token"`) {
		t.Fatalf("with the injected header: %d %s %v, want 200 and a token", status, body, err)
	}
}

// C10: the header exists only in the started app's environment, and a restart replaces it.
func TestHeaderLivesOnlyInTheAppsEnvironmentAndChangesOnRestart(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	const site = "app-c10-restart"

	start := func() (*apptest.App, launch.Child, string) {
		t.Helper()
		child, err := launch.AppService(cloud, site)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(child.Stop)
		app := startApp(t, cloud, child.Env...)
		app.WaitLog("secret loaded")
		header, ok := lookupEnv(appEnviron(t, app), "IDENTITY_HEADER")
		if !ok || header == "" {
			t.Fatal("IDENTITY_HEADER is not in the started app's environment")
		}
		return app, child, header
	}
	endpointOf := func(child launch.Child) string {
		u, _ := lookupEnv(child.Env, "IDENTITY_ENDPOINT")
		return u
	}
	withHeader := func(h string) map[string]string { return map[string]string{"X-IDENTITY-HEADER": h} }

	app1, child1, h1 := start()
	url1 := endpointOf(child1)

	// Nowhere else: not in the code, not in the build, not in the environment of this process,
	// which started the app.
	for name, src := range lessonSources(t) {
		if bytes.Contains(src, []byte(h1)) {
			t.Errorf("%s holds the header", name)
		}
	}
	if bytes.Contains(lessonBinary(t), []byte(h1)) {
		t.Error("the built app holds the header")
	}
	for _, kv := range os.Environ() {
		if strings.Contains(kv, h1) {
			t.Errorf("the test process's own environment holds the header: %s", kv)
		}
	}
	if status, body, err := askForToken(url1, withHeader(h1)); err != nil || status != http.StatusOK {
		t.Fatalf("while the app runs its header works: %d %s %v", status, body, err)
	}

	// Stop the app, as the platform does on a restart; the token service stops with it.
	app1.Stop()
	child1.Stop()
	if status, _, err := askForToken(url1, withHeader(h1)); err == nil && status == http.StatusOK {
		t.Error("the stopped app's token service still gives out tokens for its header")
	}

	app2, child2, h2 := start()
	if h2 == h1 {
		t.Fatalf("the restarted app got the same header %q", h2)
	}
	url2 := endpointOf(child2)
	if status, body, err := askForToken(url2, withHeader(h1)); err != nil || status != http.StatusUnauthorized {
		t.Errorf("the old header at the new token service: %d %s %v, want 401", status, body, err)
	}
	if status, body, err := askForToken(url2, withHeader(h2)); err != nil || status != http.StatusOK {
		t.Errorf("the new header: %d %s %v, want 200", status, body, err)
	}
	wantGet(t, app2, "/api/SecretTest", http.StatusOK, localcloud.SecretValue)
}
