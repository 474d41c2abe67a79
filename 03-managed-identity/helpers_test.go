package main

// Helpers for the step's tests: the built binaries, App Service played by hand where a test
// needs to see the identity endpoint, raw calls to that endpoint and to the vault, and the
// checks that look for credentials in text, binaries and environments.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
)

// outsiderEnv switches the test binary into the outsider of outsider_test.go: a process that
// is not the app. TestMain reads it before any test runs.
const outsiderEnv = "STEP03_OUTSIDER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(outsiderEnv); mode != "" {
		os.Exit(outsider(mode))
	}
	// The apps this process starts inherit SIGHUP ignored, so a refresh signal that comes too
	// early is dropped instead of killing the app; see refresh.
	signal.Ignore(syscall.SIGHUP)
	os.Exit(apptest.Main(m))
}

// appBinary is this step as `go build` makes it (with embedded.go), built once for all tests.
func appBinary(t *testing.T) string { return apptest.Build(t, ".") }

// lessonBinary is the app built as 04-deploy builds it for Azure (-tags nolocalcloud): without
// embedded.go and the local cloud it links in (with the local cloud's published well-known
// values, which belong to the local cloud, not to this app).
func lessonBinary(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(apptest.Build(t, ".", "nolocalcloud"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lessonSources are the step's Go files, tests excluded.
func lessonSources(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	if _, ok := out["main.go"]; !ok {
		t.Fatalf("main.go not found among %v", names)
	}
	return out
}

// shortTokens makes the local Entra's tokens last less than MSAL's five-minute margin, so MSAL
// never hands back a cached token: once the vault refuses the token the app holds (a 401 makes
// azcore drop its copy), the app asks the identity endpoint again, as it would on Azure once
// the cached token ran out.
func shortTokens(o *localcloud.Options) { o.TokenLifetime = time.Minute }

// webApp is a web app as App Service runs it here: its resource ID, its system-assigned
// identity and the token endpoint the platform started for it.
type webApp struct {
	resource string
	sp       directory.ServicePrincipal
	endpoint *identity.Endpoint
}

// newWebApp does what launch.AppService does (turn the system-assigned identity on, give it
// Key Vault Secrets User on the vault, start the identity endpoint), keeping the endpoint so
// the test can count what it was asked and what it gave out.
func newWebApp(t *testing.T, cloud *localcloud.Cloud, site string) *webApp {
	t.Helper()
	w := &webApp{resource: localcloud.WebAppResourceID(site)}
	w.sp = enableIdentity(t, cloud, w.resource)
	grantSecretsUser(t, cloud, w.sp.ObjectID)
	w.endpoint = startEndpoint(t, cloud, w.resource)
	return w
}

// env is what the platform adds to the app's environment.
func (w *webApp) env(extra ...string) []string { return append(w.endpoint.Env(), extra...) }

func enableIdentity(t *testing.T, cloud *localcloud.Cloud, resource string) directory.ServicePrincipal {
	t.Helper()
	sp, err := cloud.Directory.EnableSystemAssignedIdentity(localcloud.TenantID, resource)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func grantSecretsUser(t *testing.T, cloud *localcloud.Cloud, principalID string) {
	t.Helper()
	if _, err := cloud.AssignRole(principalID, directory.KeyVaultSecretsUser.RoleName, localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}
}

func startEndpoint(t *testing.T, cloud *localcloud.Cloud, resource string) *identity.Endpoint {
	t.Helper()
	ep, err := cloud.Identity.Start(resource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// startApp runs the step's binary with the local cloud's environment plus what the platform adds.
func startApp(t *testing.T, cloud *localcloud.Cloud, platformEnv ...string) *apptest.App {
	t.Helper()
	return apptest.Start(t, appBinary(t), cloud.ChildEnv(os.Environ(), platformEnv...))
}

// loopback talks to the identity endpoint directly, never through a proxy.
var loopback = &http.Client{Transport: &http.Transport{}, Timeout: apptest.WaitTimeout}

// askForToken calls an identity endpoint the way the SDK does. headers are sent as given;
// pass none to send no X-IDENTITY-HEADER at all. err is set when nothing answered.
func askForToken(endpointURL string, headers map[string]string) (status int, body string, err error) {
	u := endpointURL + "?api-version=" + identity.APIVersion + "&resource=" + url.QueryEscape(keyvault.Audience)
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := loopback.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// tokenFrom gets a token from the endpoint with its header, as the app does, and returns the
// raw access token.
func tokenFrom(t *testing.T, ep *identity.Endpoint) string {
	t.Helper()
	status, body, err := askForToken(ep.URL, map[string]string{"X-IDENTITY-HEADER": ep.Header})
	if err != nil || status != http.StatusOK {
		t.Fatalf("token from the identity endpoint with its own header: %d %s %v", status, body, err)
	}
	m := regexp.MustCompile(`"access_token":"([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no access_token in %s", body)
	}
	return m[1]
}

// readSecretWith calls the vault directly with a bearer token and returns the status and body.
func readSecretWith(t *testing.T, cloud *localcloud.Cloud, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apptest.WaitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		localcloud.VaultURL+"secrets/"+localcloud.SecretName+"/?api-version=7.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := cloud.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refresh is app.Refresh, once the app listens for SIGHUP. The app asks for SIGHUP in a
// goroutine that may still be starting when it logs "listening", and until then a SIGHUP is
// fatal to a Go program. Started with SIGHUP ignored (TestMain), the app keeps ignoring it
// until signal.Notify installs its handler, which the kernel shows in /proc/<pid>/status.
func refresh(t *testing.T, app *apptest.App) string {
	t.Helper()
	if runtime.GOOS == "linux" {
		status := fmt.Sprintf("/proc/%d/status", app.PID())
		deadline := time.Now().Add(apptest.WaitTimeout)
		for ignoresHangup(t, status) {
			if time.Now().After(deadline) {
				t.Fatalf("the app did not start listening for SIGHUP within %v; its log:\n%s", apptest.WaitTimeout, app.Log())
			}
			runtime.Gosched()
		}
	}
	return app.Refresh()
}

// ignoresHangup reads the SigIgn mask of a process's status: bit 0 is SIGHUP.
func ignoresHangup(t *testing.T, status string) bool {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if mask, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			if err != nil {
				t.Fatalf("SigIgn %q: %v", mask, err)
			}
			return v&1 != 0
		}
	}
	t.Fatalf("no SigIgn in %s", status)
	return false
}

// logField reads key=value from one of the app's log lines (slog's text format).
func logField(line, key string) string {
	m := regexp.MustCompile(`(?:^| )` + regexp.QuoteMeta(key) + `=("(?:[^"\\]|\\.)*"|\S*)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `"`)
}

// wantGet fetches a path of the app and checks the status and that the body contains want.
func wantGet(t *testing.T, app *apptest.App, path string, status int, want string) {
	t.Helper()
	got, body := app.Get(path)
	if got != status || !strings.Contains(body, want) {
		t.Fatalf("GET %s = %d %q, want %d with %q", path, got, body, status, want)
	}
}

// appEnviron is the running app's environment as the operating system holds it.
func appEnviron(t *testing.T, app *apptest.App) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reading another process's environment needs /proc (Linux)")
	}
	env, err := app.Environ()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// credentialVariables are the variables the Azure SDKs read a credential (or a secret that
// gets one) from.
var credentialVariables = []string{
	"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
	"AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_HEADER", "MSI_SECRET",
}

var credentialShapes = []struct {
	what string
	re   *regexp.Regexp
}{
	// Entra ID client secrets are 40 characters with "Q~" after a digit at the fourth place.
	{"an Entra ID client secret", regexp.MustCompile(`[A-Za-z0-9_.~-]{3}[0-9]Q~[A-Za-z0-9_.~-]{34}`)},
	{"a PEM certificate or key", regexp.MustCompile(`-----BEGIN [A-Z0-9 ]+-----\r?\n[A-Za-z0-9+/=\r\n]{40,}`)},
	{"a JWT (an access token or a client assertion)", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)},
}

// findCredentials lists the credentials in b: the local cloud's own well-known client secrets,
// anything shaped like a client secret, a PEM block, or a token.
func findCredentials(b []byte) []string {
	var found []string
	for _, s := range []string{localcloud.Step01ClientSecret, localcloud.DeveloperClientSecret} {
		if bytes.Contains(b, []byte(s)) {
			found = append(found, "the well-known client secret "+s)
		}
	}
	for _, c := range credentialShapes {
		if m := c.re.Find(b); m != nil {
			found = append(found, fmt.Sprintf("%s (%.12q…)", c.what, m))
		}
	}
	return found
}

// randomLooking matches long values made of the characters secrets are made of: not a path
// (no slash), not a URL (no colon), not a list (no comma).
var randomLooking = regexp.MustCompile(`^[A-Za-z0-9+=_.~-]{32,}$`)

// secretSettings names the variables of env that hold something secret: a credential
// variable of the Azure SDKs, a value holding a credential, or a long random-looking value
// (IDs such as the tenant ID are not secrets and are left out).
func secretSettings(env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		_, isID := uuid.Parse(v)
		if slices.Contains(credentialVariables, strings.ToUpper(k)) || len(findCredentials([]byte(v))) > 0 ||
			(randomLooking.MatchString(v) && isID != nil) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
