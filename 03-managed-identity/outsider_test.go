package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// The outsider's two ways in.
const (
	// outsiderSDK runs the same unmodified azidentity code as the app, with whatever
	// IDENTITY_ENDPOINT and IDENTITY_HEADER the outsider has.
	outsiderSDK = "sdk"
	// outsiderHTTP calls IDENTITY_ENDPOINT by hand with no header at all: with IDENTITY_HEADER
	// unset the SDK would not try the App Service endpoint, it would go to the VM metadata service.
	outsiderHTTP = "http"
)

// outsiderResult is what the outsider reports on stdout.
type outsiderResult struct {
	Token       bool   `json:"token"`
	TokenError  string `json:"tokenError,omitempty"`
	Secret      string `json:"secret,omitempty"`
	SecretError string `json:"secretError,omitempty"`
}

// outsider runs in a separate process (the test binary started again with STEP03_OUTSIDER):
// it tries to get a token for Key Vault from the app's token service and to read the secret.
func outsider(mode string) int {
	// A safety net for a broken local cloud, not a timing assumption.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res outsiderResult
	var err error
	switch mode {
	case outsiderSDK:
		res, err = outsiderWithSDK(ctx)
	case outsiderHTTP:
		res, err = outsiderByHand(ctx)
	default:
		err = fmt.Errorf("unknown %s %q", outsiderEnv, mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 2
	}
	return 0
}

func outsiderWithSDK(ctx context.Context) (outsiderResult, error) {
	var res outsiderResult
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		return res, err
	}
	if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{keyvault.Audience + "/.default"}}); err != nil {
		res.TokenError = err.Error()
	} else {
		res.Token = true
	}
	client, err := azsecrets.NewClient(os.Getenv("AZURE_KEYVAULT_URL"), cred, nil)
	if err != nil {
		return res, err
	}
	if resp, err := client.GetSecret(ctx, localcloud.SecretName, "", nil); err != nil {
		res.SecretError = err.Error()
	} else {
		res.Secret = *resp.Value
	}
	return res, nil
}

func outsiderByHand(ctx context.Context) (outsiderResult, error) {
	var res outsiderResult
	u := os.Getenv("IDENTITY_ENDPOINT") + "?api-version=" + identity.APIVersion + "&resource=" + url.QueryEscape(keyvault.Audience)
	body, err := outsiderGet(ctx, u, "")
	if err != nil {
		res.TokenError = err.Error()
		return res, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		res.TokenError = "no access_token in " + string(body)
		return res, nil
	}
	res.Token = true
	body, err = outsiderGet(ctx, os.Getenv("AZURE_KEYVAULT_URL")+"secrets/"+localcloud.SecretName+"/?api-version=7.5", tok.AccessToken)
	if err != nil {
		res.SecretError = err.Error()
	} else {
		res.Secret = string(body)
	}
	return res, nil
}

func outsiderGet(ctx context.Context, u, bearer string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	return b, err
}

// runOutsider starts the outsider as its own process with the local cloud's environment plus env.
func runOutsider(t *testing.T, cloud *localcloud.Cloud, mode string, env ...string) (outsiderResult, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = cloud.ChildEnv(os.Environ(), append(env, outsiderEnv+"="+mode)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the outsider failed to run: %v\n%s", err, stderr.String())
	}
	var res outsiderResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("the outsider's report %q: %v", out, err)
	}
	return res, string(out)
}

// C11: a process that is not the app, without the header the platform gave the app, gets no
// token and reads nothing, though it runs the very same SDK code and knows the endpoint.
func TestAnotherProcessWithoutTheHeaderGetsNoToken(t *testing.T) {
	t.Parallel()
	cloud := localcloudtest.Start(t)
	w := newWebApp(t, cloud, "app-c11")
	other := newWebApp(t, cloud, "app-c11-other")
	app := startApp(t, cloud, w.env()...)
	app.WaitLog("secret loaded")
	wantGet(t, app, "/api/SecretTest", http.StatusOK, localcloud.SecretValue)

	guess := make([]byte, 32)
	rand.Read(guess)
	endpoint := "IDENTITY_ENDPOINT=" + w.endpoint.URL
	for _, tc := range []struct {
		name string
		mode string
		env  []string
	}{
		{"the SDK with a guessed IDENTITY_HEADER", outsiderSDK, []string{endpoint, "IDENTITY_HEADER=" + hex.EncodeToString(guess)}},
		{"the SDK with another app's IDENTITY_HEADER", outsiderSDK, []string{endpoint, "IDENTITY_HEADER=" + other.endpoint.Header}},
		{"by hand with no header", outsiderHTTP, []string{endpoint}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requests, issued := w.endpoint.Requests(), w.endpoint.Issued()
			res, out := runOutsider(t, cloud, tc.mode, tc.env...)
			if res.Token || res.Secret != "" || strings.Contains(out, localcloud.SecretValue) {
				t.Errorf("the outsider got in: %s", out)
			}
			if w.endpoint.Requests() == requests {
				t.Errorf("the outsider never reached the app's token service (%s), so this proves nothing", out)
			}
			if n := w.endpoint.Issued() - issued; n != 0 {
				t.Errorf("the token service gave the outsider %d tokens", n)
			}
			if !strings.Contains(res.TokenError, "401") && !strings.Contains(res.TokenError, "X-IDENTITY-HEADER") {
				t.Errorf("token error %q does not say the token service refused the caller", res.TokenError)
			}
		})
	}

	t.Run("the same code with the app's header gets in", func(t *testing.T) {
		// The control: the header, which only the app has, is all that kept the outsider out.
		res, out := runOutsider(t, cloud, outsiderSDK, endpoint, "IDENTITY_HEADER="+w.endpoint.Header)
		if !res.Token || res.Secret != localcloud.SecretValue {
			t.Errorf("with the app's header the outsider's code should read the secret: %s", out)
		}
	})
}
