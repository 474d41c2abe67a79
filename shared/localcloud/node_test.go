package localcloud_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/launch"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

// nodeProbe is the Azure SDK for JavaScript (testdata/node: @azure/identity and
// @azure/keyvault-secrets, unmodified). .ci/run installs it with npm ci; elsewhere the tests
// skip with the command to run, unless LOCALCLOUD_REQUIRE_NODE=1 makes a missing SDK a failure.
func nodeProbe(t *testing.T) (node, script string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	node, lookErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "@azure", "keyvault-secrets"))
	if lookErr != nil || modErr != nil {
		msg := "the JavaScript SDK is not installed: run npm ci --prefix shared/localcloud/testdata/node"
		if os.Getenv("LOCALCLOUD_REQUIRE_NODE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, filepath.Join(dir, "probe.mjs")
}

func runNode(t *testing.T, env []string, args ...string) string {
	t.Helper()
	node, script := nodeProbe(t)
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The JavaScript SDK opens a tunnel per request, speaks HTTP/1.1 without ALPN, percent-encodes
// query keys and applies HTTPS_PROXY to loopback unless NO_PROXY says otherwise: the local
// cloud's environment covers all of it, with nothing changed in the program.
func TestJavaScriptSDKWithAServicePrincipal(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	out := runNode(t, c.ChildEnv(os.Environ(), c.DeveloperEnv()...), localcloud.SecretName, "all")
	if !strings.Contains(out, localcloud.SecretName+"="+localcloud.SecretValue) || !strings.Contains(out, "listed=2") {
		t.Fatalf("node printed:\n%s", out)
	}
}

func TestJavaScriptSDKWithAManagedIdentity(t *testing.T) {
	t.Parallel()
	c := localcloudtest.Start(t)
	child, err := launch.AppService(c, "node-app")
	if err != nil {
		t.Fatal(err)
	}
	defer child.Stop()
	before := c.Entra.TokenRequests()
	out := runNode(t, c.ChildEnv(os.Environ(), child.Env...), localcloud.SecretName)
	if !strings.Contains(out, localcloud.SecretName+"="+localcloud.SecretValue) {
		t.Fatalf("node printed:\n%s", out)
	}
	if child.Endpoint.Issued() == 0 || c.Entra.TokenRequests() != before {
		t.Fatalf("the token did not come from the identity endpoint (issued %d, Entra token requests +%d)",
			child.Endpoint.Issued(), c.Entra.TokenRequests()-before)
	}
}
