package main

// Helpers for this step's tests: building the app once, registering it in a local cloud and
// starting it with its credential in the environment, reading its log, calling Entra ID and the
// vault by hand, and the "thief": a process that holds nothing but a copied credential.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
)

// thiefEnv turns the test binary into the thief (see TestMain): a second, unrelated process.
// thiefSecretsEnv names secrets it should try to read even when it may not list the vault.
const (
	thiefEnv        = "STEP02_THIEF"
	thiefSecretsEnv = "STEP02_THIEF_SECRETS"
)

func TestMain(m *testing.M) {
	if os.Getenv(thiefEnv) == "1" {
		os.Exit(thief())
	}
	os.Exit(apptest.Main(m))
}

// appBinary is this step as `go build` makes it (with embedded.go), built once for all tests.
func appBinary(t *testing.T) string { return apptest.Build(t, ".") }

// lessonBinary is this step built as it is deployed (-tags nolocalcloud): without embedded.go
// and the local cloud it links in, which carries the local cloud's own well-known values and would
// blur what the app's code holds.
func lessonBinary(t *testing.T) string { return apptest.Build(t, ".", "nolocalcloud") }

// shortTokens makes Entra's tokens last 2 minutes, under the 5-minute margin within which the
// SDK treats a cached token as used up: whenever the app needs a new token, it signs in again
// with its credential instead of answering from its cache.
func shortTokens(o *localcloud.Options) { o.TokenLifetime = 2 * time.Minute }

// tokenExpired is how far to move a local cloud's clock so that every token the app holds is
// refused as expired: a token's lifetime (shortTokens) plus the five minutes of clock skew the
// vault allows. Short tokens alone do not make the app sign in again on its next refresh: the
// SDK reuses a token it got less than 30 seconds ago, so a test makes the vault refuse it.
const tokenExpired = 10 * time.Minute

// testClock is a clock a test can move forward, for a local cloud's Options.Now.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time               { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration)      { c.offset.Add(int64(d)) }
func (c *testClock) option(o *localcloud.Options) { o.Now = c.Now }

// registerReader registers an app (az ad sp create-for-rbac) and gives its service principal
// Key Vault Secrets User on the well-known vault.
func registerReader(t *testing.T, cloud *localcloud.Cloud, name string) localcloud.App {
	t.Helper()
	app, err := cloud.RegisterApp(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cloud.AssignRole(app.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		t.Fatal(err)
	}
	return app
}

// secretEnv is the configuration of an app that signs in with a client secret.
func secretEnv(clientID, secret string) []string {
	return []string{"AZURE_TENANT_ID=" + localcloud.TenantID, "AZURE_CLIENT_ID=" + clientID, "AZURE_CLIENT_SECRET=" + secret}
}

// certificateEnv writes the certificate and its private key to a file, as
// `az ad sp create-for-rbac --create-cert` does, and returns the configuration that points at it.
func certificateEnv(t *testing.T, clientID string, pemFile []byte) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, pemFile, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"AZURE_TENANT_ID=" + localcloud.TenantID, "AZURE_CLIENT_ID=" + clientID, "AZURE_CLIENT_CERTIFICATE_PATH=" + path}
}

// startApp runs the step's app in the local cloud with config, its credential, in its environment.
func startApp(t *testing.T, cloud *localcloud.Cloud, config []string) *apptest.App {
	t.Helper()
	return apptest.Start(t, appBinary(t), cloud.ChildEnv(os.Environ(), config...))
}

var logField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// logFields parses a slog text line into its keys and values.
func logFields(line string) map[string]string {
	out := map[string]string{}
	for _, m := range logField.FindAllStringSubmatch(line, -1) {
		v := m[2]
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		out[m[1]] = v
	}
	return out
}

// entraClient talks to the local cloud's Entra ID and Key Vault over HTTPS through its proxy.
type entraClient struct {
	t    *testing.T
	http *http.Client
}

func newEntraClient(t *testing.T, cloud *localcloud.Cloud) *entraClient {
	c := &entraClient{t: t, http: cloud.HTTPClient()}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// signIn asks Entra ID's token endpoint for a Key Vault token with a client secret ("" sends
// none). It returns the token, or the AADSTS code of the refusal.
func (c *entraClient) signIn(tenantID, clientID, secret string) (token string, aadsts int) {
	c.t.Helper()
	form := url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {clientID},
		"scope":      {"https://vault.azure.net/.default"},
	}
	if secret != "" {
		form.Set("client_secret", secret)
	}
	resp, err := c.http.PostForm("https://login.microsoftonline.com/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ErrorCodes  []int  `json:"error_codes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		c.t.Fatalf("token endpoint answered %d with no JSON: %v", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK && body.AccessToken != "" {
		return body.AccessToken, 0
	}
	if len(body.ErrorCodes) == 0 {
		c.t.Fatalf("token endpoint answered %d with no AADSTS code", resp.StatusCode)
	}
	return "", body.ErrorCodes[0]
}

// getSecret reads a secret of the well-known vault with a raw HTTPS request and a bearer token.
func (c *entraClient) getSecret(token, name string) (status int, body string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, localcloud.VaultURL+"secrets/"+name+"?api-version=2026-04-01", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// secretRuns lists the runs of the characters Entra ID draws client secrets from that hold a
// '~' and are long enough to be a secret: Entra's secrets carry one ("abc8Q~..."), which is what
// `strings app | grep '~'` would show. (bytes.IndexByte keeps this fast on a 10 MB binary under
// the race detector, where a regexp takes seconds.)
func secretRuns(b []byte) [][]byte {
	inSecret := func(c byte) bool {
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '~' || c == '-'
	}
	var out [][]byte
	for i := 0; ; {
		d := bytes.IndexByte(b[i:], '~')
		if d < 0 {
			return out
		}
		start, end := i+d, i+d+1
		for start > 0 && inSecret(b[start-1]) {
			start--
		}
		for end < len(b) && inSecret(b[end]) {
			end++
		}
		if end-start >= minSecretLength {
			out = append(out, b[start:end])
		}
		i = end
	}
}

// The lengths of secret tried: Entra ID makes client secrets of 40 characters.
const minSecretLength, maxSecretLength = 16, 64

// secretCandidates are the stretches of the secret-shaped runs in b that could be a client
// secret. Go lays string constants end to end with no separator, so a secret in the code is
// somewhere inside a run.
func secretCandidates(b []byte) []string {
	var out []string
	for _, run := range secretRuns(b) {
		for start := range run {
			for end := min(len(run), start+maxSecretLength); end-start >= minSecretLength; end-- {
				if s := run[start:end]; bytes.IndexByte(s, '~') >= 0 {
					out = append(out, string(s))
				}
			}
		}
	}
	return out
}

// ---- the thief: a separate process holding only a copied credential

// loot is what the thief reports on its standard output.
type loot struct {
	SignInError string            `json:"signInError,omitempty"`
	ObjectID    string            `json:"oid,omitempty"`      // whom the vault sees calling
	AppIDACR    string            `json:"appidacr,omitempty"` // 1: a secret, 2: a certificate
	Token       string            `json:"token,omitempty"`
	Listed      []string          `json:"listed,omitempty"`
	ListError   string            `json:"listError,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
	Errors      map[string]string `json:"errors,omitempty"`
}

// thief runs in a child process (TestMain): it is not the app and never ran its code. With the
// copied AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)
// it signs in with the unmodified SDK, lists the vault and reads every secret it can.
func thief() int {
	out, err := steal()
	if err != nil {
		fmt.Fprintln(os.Stderr, "thief:", err)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "thief:", err)
		return 2
	}
	return 0
}

func steal() (loot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cred, err := azidentity.NewEnvironmentCredential(nil)
	if err != nil {
		return loot{}, err
	}
	var out loot
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		out.SignInError = err.Error()
		return out, nil
	}
	claims := unverifiedClaims(tok.Token)
	out.ObjectID, out.AppIDACR, out.Token = claims["oid"], claims["appidacr"], tok.Token
	client, err := azsecrets.NewClient(os.Getenv("AZURE_KEYVAULT_URL"), cred, nil)
	if err != nil {
		return loot{}, err
	}
	out.Values, out.Errors = map[string]string{}, map[string]string{}
	for pager := client.NewListSecretPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			out.ListError = err.Error()
			break
		}
		for _, p := range page.Value {
			out.Listed = append(out.Listed, p.ID.Name())
		}
	}
	names := out.Listed
	if extra := os.Getenv(thiefSecretsEnv); extra != "" {
		names = append(names, strings.Split(extra, ",")...)
	}
	for _, name := range names {
		if _, done := out.Values[name]; done {
			continue
		}
		resp, err := client.GetSecret(ctx, name, "", nil)
		if err != nil {
			out.Errors[name] = err.Error()
			continue
		}
		out.Values[name] = *resp.Value
	}
	return out, nil
}

// unverifiedClaims reads a JWT's string claims without checking it: for reporting only.
func unverifiedClaims(token string) map[string]string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var raw map[string]any
	if json.Unmarshal(payload, &raw) != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// runThief starts the test binary again as the thief, with only the local cloud's environment
// (the vault's URL, the transport), the copied configuration, and the names of secrets to try.
func runThief(t *testing.T, cloud *localcloud.Cloud, copied []string, secrets ...string) loot {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apptest.WaitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	extra := append([]string{thiefEnv + "=1", thiefSecretsEnv + "=" + strings.Join(secrets, ",")}, copied...)
	cmd.Env = cloud.ChildEnv(os.Environ(), extra...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("the thief failed: %v\n%s", err, stderr.String())
	}
	var out loot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("the thief's report %q: %v", b, err)
	}
	return out
}
