package main

// The proof of step 03's claims (shared CLAIMS table, C8 to C13). Each test runs its own local
// cloud and starts the step's real binary as App Service would: with IDENTITY_ENDPOINT and
// IDENTITY_HEADER in its environment and nothing else that could prove who it is.

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// C8: with a managed identity, no credential is kept anywhere outside the vault, and the app
// still reads its secret.
func TestNoCredentialInSourceBinaryOrSettingsYetTheAppReadsTheSecret(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)

	t.Run("the checks find a credential where there is one", func(t *testing.T) {
		// Without this, an empty result below would prove nothing.
		sp, _ := cloud.Directory.ServicePrincipalByAppID(localcloud.TenantID, localcloud.Step01ClientID)
		tok, err := cloud.Entra.IssueAccessToken(sp, keyvault.Audience, entra.ACRSecret)
		if err != nil {
			t.Fatal(err)
		}
		for name, text := range map[string]string{
			"step 01's secret in source": `const clientSecret = "` + localcloud.Step01ClientSecret + `"`,
			"a new client secret":        directory.GenerateClientSecret(),
			"a certificate":              string(cloud.CA.CertPEM()),
			"a token":                    tok.Token,
		} {
			if len(findCredentials([]byte(text))) == 0 {
				t.Errorf("findCredentials misses %s", name)
			}
		}
		step02 := []string{"AZURE_TENANT_ID=" + localcloud.TenantID, "AZURE_CLIENT_ID=" + localcloud.DeveloperClientID,
			"AZURE_CLIENT_SECRET=" + directory.GenerateClientSecret(), "IDENTITY_HEADER=" + strings.Repeat("ab", 32), "X=" + strings.Repeat("ab", 32)}
		if got, want := secretSettings(step02), []string{"AZURE_CLIENT_SECRET", "IDENTITY_HEADER", "X"}; !slices.Equal(got, want) {
			t.Errorf("secretSettings(step 02's settings) = %v, want %v", got, want)
		}
	})

	child, err := launch.AppService(cloud, "app-c8")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(child.Stop)
	// Nothing inherited from the test's own environment: the app's environment is exactly its
	// settings, what the platform (here, the local cloud) gives it.
	app := apptest.Start(t, appBinary(t), cloud.ChildEnv(nil, child.Env...))
	app.WaitLog("secret loaded")
	wantGet(t, app, "/api/SecretTest", http.StatusOK, "Secret value: "+localcloud.SecretValue)

	t.Run("source", func(t *testing.T) {
		for name, src := range lessonSources(t) {
			if found := findCredentials(src); len(found) > 0 {
				t.Errorf("%s holds %v", name, found)
			}
			for _, v := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD"} {
				if bytes.Contains(src, []byte(v)) {
					t.Errorf("%s reads %s", name, v)
				}
			}
		}
	})
	t.Run("binary", func(t *testing.T) {
		bin := lessonBinary(t)
		if found := findCredentials(bin); len(found) > 0 {
			t.Errorf("the built app holds %v", found)
		}
		for _, v := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} {
			if bytes.Contains(bin, []byte(v)) {
				t.Errorf("the built app mentions %s", v)
			}
		}
	})
	t.Run("settings", func(t *testing.T) {
		env := appEnviron(t, app)
		for _, v := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"} {
			if _, ok := lookupEnv(env, v); ok {
				t.Errorf("the app's environment sets %s", v)
			}
		}
		// The one secret is the token service's header, which the platform put there.
		if got, want := secretSettings(env), []string{"IDENTITY_HEADER"}; !slices.Equal(got, want) {
			t.Errorf("secret-looking settings = %v, want only %v; environment:\n%s", got, want, strings.Join(env, "\n"))
		}
		header, _ := lookupEnv(env, "IDENTITY_HEADER")
		injected, _ := lookupEnv(child.Env, "IDENTITY_HEADER")
		if header == "" || header != injected {
			t.Errorf("IDENTITY_HEADER = %q, want the platform's %q", header, injected)
		}
	})
}

// C9: the app gets its tokens from the platform's token service, and never from Entra ID.
func TestTokensComeFromTheIdentityEndpointNeverFromEntra(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	w := newWebApp(t, cloud, "app-c9")

	before := cloud.Entra.TokenRequests()
	app := startApp(t, cloud, w.env()...)
	signedIn := app.WaitLog("signed in as a managed identity")
	app.WaitLog("secret loaded")
	wantGet(t, app, "/api/SecretTest", http.StatusOK, localcloud.SecretValue)

	for key, want := range map[string]string{
		"oid":      w.sp.ObjectID, // the identity the platform registered
		"appid":    w.sp.AppID,
		"tid":      localcloud.TenantID,
		"appidacr": "2", // neither a secret ("1") nor anything the app holds
	} {
		if got := logField(signedIn, key); got != want {
			t.Errorf("%s = %q, want %q; log line: %s", key, got, want, signedIn)
		}
	}

	if line := refresh(t, app); !strings.Contains(line, "secret loaded") {
		t.Fatalf("refresh: %s", line)
	}
	if issued, asked := w.endpoint.Issued(), w.endpoint.Requests(); issued == 0 || asked < issued {
		t.Errorf("identity endpoint: asked %d times, gave %d tokens; want the app's tokens from it", asked, issued)
	}
	if n := cloud.Entra.TokenRequests() - before; n != 0 {
		t.Errorf("the app called Entra ID's token endpoint %d times; want 0", n)
	}
}

// A user-assigned identity is picked with AZURE_CLIENT_ID; without it, the app is its
// system-assigned identity.
func TestUserAssignedIdentityIsChosenWithAZURE_CLIENT_ID(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	w := newWebApp(t, cloud, "app-ua") // its system-assigned identity can read the vault too

	uaResource := "/subscriptions/" + localcloud.SubscriptionID + "/resourceGroups/" + localcloud.ResourceGroup +
		"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-step03"
	ua, err := cloud.Directory.CreateUserAssignedIdentity(localcloud.TenantID, uaResource)
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.Directory.AssignUserAssignedIdentity(localcloud.TenantID, w.resource, uaResource); err != nil {
		t.Fatal(err)
	}
	grantSecretsUser(t, cloud, ua.ObjectID)

	for _, tc := range []struct {
		name  string
		extra []string
		want  directory.ServicePrincipal
	}{
		{"without AZURE_CLIENT_ID: system-assigned", nil, w.sp},
		{"with AZURE_CLIENT_ID: user-assigned", []string{"AZURE_CLIENT_ID=" + ua.AppID}, ua},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// AZURE_CLIENT_ID goes after the local cloud's environment: ChildEnv drops inherited AZURE_*.
			app := startApp(t, cloud, w.env(tc.extra...)...)
			signedIn := app.WaitLog("signed in as a managed identity")
			if got := logField(signedIn, "oid"); got != tc.want.ObjectID {
				t.Errorf("oid = %q, want %q; log line: %s", got, tc.want.ObjectID, signedIn)
			}
			if got := logField(signedIn, "appid"); got != tc.want.AppID {
				t.Errorf("appid = %q, want %q", got, tc.want.AppID)
			}
			app.WaitLog("secret loaded")
			wantGet(t, app, "/api/SecretTest", http.StatusOK, localcloud.SecretValue)
		})
	}
}
