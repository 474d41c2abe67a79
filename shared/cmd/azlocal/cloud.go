package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// The hosts and token scopes azlocal talks to, as az does.
const (
	armEndpoint   = "https://management.azure.com"
	graphEndpoint = "https://graph.microsoft.com/v1.0"
	armScope      = "https://management.azure.com/.default"
	graphScope    = "https://graph.microsoft.com/.default"
	vaultScope    = "https://vault.azure.net/.default"
	vaultSuffix   = ".vault.azure.net"

	subscriptionName = "Local Cloud"
	noCloud          = "no local cloud found: start one with 'go run ./shared/cmd/localcloud'"
)

// findDir finds the local cloud's folder: $LOCALCLOUD_DIR, else ./.localcloud, else the nearest
// parent folder's .localcloud that holds an env file.
func findDir(getenv func(string) string) (string, error) {
	if dir := getenv("LOCALCLOUD_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, localcloud.EnvFile)); err != nil {
			return "", failure("%s (LOCALCLOUD_DIR=%s has no %s)", noCloud, dir, localcloud.EnvFile)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", failure("%s (%v)", noCloud, err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		candidate := filepath.Join(d, ".localcloud")
		if _, err := os.Stat(filepath.Join(candidate, localcloud.EnvFile)); err == nil {
			return candidate, nil
		}
		if filepath.Dir(d) == d {
			return "", failure("%s (no .localcloud/%s here or in a parent folder, and LOCALCLOUD_DIR is unset)", noCloud, localcloud.EnvFile)
		}
	}
}

// readEnvFile reads a KEY=VALUE file as the local cloud writes it.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}

// cloud is a signed-in connection to a running local cloud.
type cloud struct {
	dir            string
	hc             *http.Client
	transport      *http.Transport
	cred           azcore.TokenCredential
	tenantID       string
	clientID       string
	subscriptionID string
	debugf         func(string, ...any)
}

// dial reads DIR/env and DIR/developer.env, checks that the proxy answers, and prepares a
// client that reaches the emulated hosts through it, trusting only the local cloud's CA.
func dial(ctx context.Context, dir string, debugf func(string, ...any)) (*cloud, error) {
	env, err := readEnvFile(filepath.Join(dir, localcloud.EnvFile))
	if err != nil {
		return nil, failure("%s (%v)", noCloud, err)
	}
	dev, err := readEnvFile(filepath.Join(dir, localcloud.DeveloperEnvFile))
	if err != nil {
		return nil, failure("%s (%v)", noCloud, err)
	}
	proxy, err := url.Parse(env["HTTPS_PROXY"])
	if err != nil || proxy.Host == "" {
		return nil, failure("%s (%s has no valid HTTPS_PROXY)", noCloud, filepath.Join(dir, localcloud.EnvFile))
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", proxy.Host)
	if err != nil {
		return nil, failure("%s (nothing answers at %s, the proxy named in %s)", noCloud, proxy.Host, filepath.Join(dir, localcloud.EnvFile))
	}
	conn.Close()
	caFile := env[localcloud.CAFileEnv]
	if caFile == "" {
		caFile = env["SSL_CERT_FILE"]
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, failure("%s (reading the local cloud's CA: %v)", noCloud, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, failure("%s (%s holds no certificate)", noCloud, caFile)
	}
	debugf("local cloud: %s, proxy %s", dir, proxy.Host)

	tr := &http.Transport{
		Proxy:               http.ProxyURL(proxy),
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     30 * time.Second,
	}
	c := &cloud{
		dir:            dir,
		hc:             &http.Client{Transport: tr},
		transport:      tr,
		tenantID:       dev["AZURE_TENANT_ID"],
		clientID:       dev["AZURE_CLIENT_ID"],
		subscriptionID: localcloud.SubscriptionID,
		debugf:         debugf,
	}
	cred, err := azidentity.NewClientSecretCredential(c.tenantID, c.clientID, dev["AZURE_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: c.hc}})
	if err != nil {
		return nil, failure("signing in as the local developer (%s): %v", filepath.Join(dir, localcloud.DeveloperEnvFile), err)
	}
	c.cred = cred
	return c, nil
}

func (c *cloud) close() { c.transport.CloseIdleConnections() }

// serviceError is an error answer from ARM, Graph or Key Vault.
type serviceError struct {
	status        int
	code, message string
	graph         bool // Graph errors print their message alone, as az's Graph client does
}

func (e *serviceError) Error() string {
	if e.graph || e.code == "" {
		return e.message
	}
	// azure-core's HttpResponseError, as az prints it.
	return fmt.Sprintf("(%s) %s\nCode: %s\nMessage: %s", e.code, e.message, e.code, e.message)
}

func (e *serviceError) exitCode() int {
	if e.status == http.StatusNotFound {
		return exitNotFound
	}
	return exitError
}

// isCode reports whether err is a service error with this status and, when given, code.
func isCode(err error, status int, code string) bool {
	var se *serviceError
	return errors.As(err, &se) && se.status == status && (code == "" || strings.EqualFold(se.code, code))
}

// request is one call to an emulated Azure API.
type request struct {
	method, url string
	scope       string // the token's scope; "" sends no token (blob SAS URLs)
	body        any    // marshalled as JSON unless it is an io.Reader
	header      http.Header
	graph       bool
}

// do sends a request and returns the answer's body; any status >= 400 is a *serviceError.
func (c *cloud) do(ctx context.Context, r request) ([]byte, error) {
	var body io.Reader
	contentType := ""
	switch b := r.body.(type) {
	case nil:
	case io.Reader:
		body = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		body, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "azlocal (AZURECLI emulation)")
	if r.scope != "" {
		tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{r.scope}})
		if err != nil {
			return nil, failure("signing in as the local developer: %v", cleanTransportError(err))
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	}
	c.debugf("Request URL: '%s'", redactURL(req.URL))
	c.debugf("Request method: '%s'", r.method)
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, failure("%v", cleanTransportError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, failure("reading the answer of %s: %v", req.URL.Host, err)
	}
	c.debugf("Response status: %d (%s)", resp.StatusCode, time.Since(start).Round(time.Millisecond))
	if resp.StatusCode >= 400 {
		return nil, decodeError(resp, raw, r.graph)
	}
	return raw, nil
}

// redactURL drops a SAS token's query, which is a credential.
func redactURL(u *url.URL) string {
	if u.Query().Has("sig") {
		v := *u
		v.RawQuery = "<SAS redacted>"
		return v.String()
	}
	return u.String()
}

// cleanTransportError explains a request that never reached an emulated service.
func cleanTransportError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "localcloud: refusing CONNECT"); i >= 0 {
		return errors.New(strings.TrimSpace(msg[i:]))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %v", ue.Op, ue.URL, ue.Err)
	}
	return err
}

func decodeError(resp *http.Response, raw []byte, graph bool) error {
	se := &serviceError{status: resp.StatusCode, graph: graph}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		se.code, se.message = body.Error.Code, body.Error.Message
		return se
	}
	se.message = fmt.Sprintf("Operation returned an invalid status '%s'", http.StatusText(resp.StatusCode))
	if text := strings.TrimSpace(string(raw)); text != "" && len(text) < 500 {
		se.message += ": " + text
	}
	return se
}

// call sends a request and decodes a JSON answer (nil for an empty one).
func (c *cloud) call(ctx context.Context, r request) (any, error) {
	raw, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, failure("%s answered something that is not JSON: %v", r.url, err)
	}
	return v, nil
}

// API versions, as az's SDKs send them.
const (
	apiResources     = "2024-03-01"
	apiKeyVault      = "2023-07-01"
	apiAuthorization = "2022-04-01"
	apiRegistry      = "2023-07-01"
	apiRegistryRuns  = "2019-06-01-preview"
	apiWeb           = "2023-12-01"
	apiVaultData     = "7.6"
)

// armURL is an ARM URL for path (which may carry its own query) at an api-version.
func armURL(path, apiVersion string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return armEndpoint + path + sep + "api-version=" + apiVersion
}

func (c *cloud) arm(ctx context.Context, method, path, apiVersion string, body any) (any, error) {
	return c.call(ctx, request{method: method, url: armURL(path, apiVersion), scope: armScope, body: body})
}

func (c *cloud) graphCall(ctx context.Context, method, path string, body any) (any, error) {
	return c.call(ctx, request{method: method, url: graphEndpoint + path, scope: graphScope, body: body, graph: true})
}

func (c *cloud) vault(ctx context.Context, method, vaultName, path string, query url.Values, body any) (any, error) {
	if query == nil {
		query = url.Values{}
	}
	query.Set("api-version", apiVaultData)
	u := "https://" + vaultName + vaultSuffix + path + "?" + query.Encode()
	return c.call(ctx, request{method: method, url: u, scope: vaultScope, body: body})
}

// Resource IDs in the local subscription.

func (c *cloud) subscriptionPath() string { return "/subscriptions/" + c.subscriptionID }

func (c *cloud) groupPath(group string) string {
	return c.subscriptionPath() + "/resourceGroups/" + group
}

func (c *cloud) resourcePath(group, provider, name string) string {
	return c.groupPath(group) + "/providers/" + provider + "/" + name
}

// odataQuote quotes a value for a $filter, as OData escapes quotes.
func odataQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// filter is a query string with an OData $filter.
func filter(expr string) string { return "?$filter=" + url.QueryEscape(expr) }
