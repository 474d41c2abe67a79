// Package launch runs a tutorial step inside the local cloud the way a platform launches an
// app: when the environment holds no Azure configuration, it starts a local cloud in this
// process, seeds it for the step, and runs the same program again as a child process with the
// environment the local cloud hands out. The child runs the lesson code, untouched.
//
// Each step calls Embedded from an init function in a small file of its own, so that the
// step's main.go stays exactly the code that would run on Azure.
package launch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
)

// VaultURLEnv is the variable whose presence means "Azure is configured: run the lesson".
const VaultURLEnv = "AZURE_KEYVAULT_URL"

// Child is what the seed function decides about the child process.
type Child struct {
	// Env is added to the local cloud's environment (credentials for step 02, the managed
	// identity endpoint for step 03).
	Env []string
	// Stop runs after the child exits (closing a managed identity endpoint, say).
	Stop func()
	// Endpoint is the app's managed identity endpoint, when the platform started one.
	Endpoint *identity.Endpoint
}

// Seed prepares the local cloud for a step.
type Seed func(c *localcloud.Cloud) (Child, error)

// Embedded either returns at once (Azure is configured: this is the lesson running, on Azure
// or as the child of a local cloud) or runs the step on an embedded local cloud and exits the
// process with the child's exit status. It never returns in the second case.
func Embedded(step string, seed Seed) {
	if testing.Testing() {
		return // a step's tests start their own local cloud and apps
	}
	if _, configured := os.LookupEnv(VaultURLEnv); configured {
		trustLocalCA()
		return
	}
	os.Exit(run(step, seed))
}

func run(step string, seed Seed) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("step", step)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cloud, err := localcloud.Start(ctx, localcloud.Options{Logger: log.With("from", "localcloud")})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: starting the local cloud: %v\n", step, err)
		return 1
	}
	defer cloud.Close()
	child, err := seed(cloud)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: preparing the local cloud: %v\n", step, err)
		return 1
	}
	if child.Stop != nil {
		defer child.Stop()
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
		return 1
	}
	log.Info("no Azure configuration found (AZURE_KEYVAULT_URL is unset): running on an embedded local cloud",
		"vault", localcloud.VaultURL, "proxy", cloud.ProxyURL())

	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = cloud.ChildEnv(os.Environ(), child.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: starting the app: %v\n", step, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Pass the interrupt on and let the app shut down cleanly.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ctx.Err() != nil && !exit.Exited() {
			return 0 // ended by our own signal
		}
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
		return 1
	}
}

// trustLocalCA makes this process trust the local CA where Go ignores SSL_CERT_FILE (macOS,
// Windows): it installs the CA as the fallback roots, which GODEBUG=x509usefallbackroots=1 (set
// by localcloud.TransportEnv there) makes Go use.
func trustLocalCA() {
	path := os.Getenv(localcloud.CAFileEnv)
	if path == "" || localcloud.ReadsSSLCertFile() {
		return
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pool := x509.NewCertPool()
	if pool.AppendCertsFromPEM(pem) {
		x509.SetFallbackRoots(pool)
	}
}

// AppService plays App Service for a web app with a system-assigned managed identity: it turns
// the identity on (a new service principal), gives it Key Vault Secrets User on the well-known
// vault, starts the app's identity endpoint, and returns the environment App Service gives the
// app. Stop closes the endpoint, as the platform does when the app stops.
func AppService(c *localcloud.Cloud, site string) (Child, error) {
	resource := localcloud.WebAppResourceID(site)
	sp, err := c.EnableManagedIdentity(site)
	if err != nil {
		return Child{}, err
	}
	if _, err := c.AssignRole(sp.ObjectID, "Key Vault Secrets User", localcloud.VaultResourceID(localcloud.VaultName)); err != nil {
		return Child{}, err
	}
	ep, err := c.Identity.Start(resource)
	if err != nil {
		return Child{}, err
	}
	env := append(ep.Env(), "WEBSITE_SITE_NAME="+site, "WEBSITE_HOSTNAME="+site+".azurewebsites.net")
	return Child{Env: env, Stop: func() { ep.Close() }, Endpoint: ep}, nil
}
