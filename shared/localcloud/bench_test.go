package localcloud_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// BenchmarkColdChildFirstGetSecret is a fresh process's first GetSecret: exec, discovery, token,
// challenge and read, through the proxy, as `go run` of a step does it.
func BenchmarkColdChildFirstGetSecret(b *testing.B) {
	c := localcloudtest.Start(b, quiet)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	env := append(c.ChildEnv(os.Environ(), c.DeveloperEnv()...), "SDKPROBE=secret")
	for b.Loop() {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}

// BenchmarkWarmGetSecret is a GetSecret with a cached token over a kept HTTP/2 connection.
// The transport is the proxy's own (this process cannot change its HTTPS_PROXY midway); the
// path, TLS and HTTP/2 included, is the one a child process takes.
func BenchmarkWarmGetSecret(b *testing.B) {
	c := localcloudtest.Start(b, quiet)
	opts := azcore.ClientOptions{Transport: c.HTTPClient()}
	cred, err := azidentity.NewClientSecretCredential(localcloud.TenantID, localcloud.DeveloperClientID, localcloud.DeveloperClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
	if err != nil {
		b.Fatal(err)
	}
	client, err := azsecrets.NewClient(localcloud.VaultURL, cred, &azsecrets.ClientOptions{ClientOptions: opts})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.GetSecret(ctx, localcloud.SecretName, "", nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := client.GetSecret(ctx, localcloud.SecretName, "", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// quiet drops the per-request log, which would otherwise be measured too.
func quiet(o *localcloud.Options) { o.Logger = nil }
