// Step 01: the bootstrapping problem.
//
// A small web app that reads the secret "SecretPassword" from Azure Key Vault and shows it at
// GET /api/SecretTest. Key Vault only answers callers that bring an Entra ID access token, and
// Entra ID only hands a token to an app that proves who it is. Here the proof, a client secret,
// is written into the source code. It works. Read main_test.go for why it is a problem.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// DELIBERATE LEAK: do not copy this into a real app. The client secret below is the key to
// the vault, and anyone who can read this file, the repository or the built binary can use it.
// These are the local cloud's well-known values, published on purpose; they open nothing on
// Azure. Step 02 moves them out of the code; step 03 gets rid of the secret altogether.
const (
	tenantID     = "10ca1c10-0000-4000-a000-000000000000"
	clientID     = "10ca1c10-0000-4000-a000-000000000001"
	clientSecret = "s01~Written.Into.Source.Code-NotASecret"
)

// secretName is the secret the app needs, as in the Learn module's sample.
const secretName = "SecretPassword"

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("the app stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	vaultURL := os.Getenv("AZURE_KEYVAULT_URL")
	if vaultURL == "" {
		return errors.New("AZURE_KEYVAULT_URL is not set: set it to your vault's URL, https://<vault-name>.vault.azure.net/")
	}

	// One credential and one client for the whole process: the credential caches its token and
	// the client its connection, so the vault and Entra ID are not asked again for every request.
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, clientSecret, nil)
	if err != nil {
		return err
	}
	client, err := azsecrets.NewClient(vaultURL, cred, nil)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Listen for SIGHUP before serving: a refresh asked for early must not kill the app.
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	defer signal.Stop(hangup)
	secret := &cachedSecret{client: client, name: secretName, log: log}
	secret.refresh(ctx)
	go secret.keepFresh(ctx, refreshInterval(log), hangup)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/SecretTest", secret.serveSecretTest)
	mux.HandleFunc("GET /healthz", secret.serveHealth)
	return serve(ctx, log, mux)
}

// cachedSecret keeps the secret in memory and refreshes it in the background, as Key Vault's
// guidance asks: an app that calls the vault on every request gets throttled.
type cachedSecret struct {
	client *azsecrets.Client
	name   string
	log    *slog.Logger

	mu        sync.RWMutex
	value     string
	version   string
	loadedAt  time.Time
	lastError error
}

func (s *cachedSecret) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := s.client.GetSecret(ctx, s.name, "", nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastError = explain(s.name, err)
		s.log.Error("reading the secret failed", "secret", s.name, "err", s.lastError)
		return
	}
	s.value, s.version, s.loadedAt, s.lastError = *resp.Value, resp.ID.Version(), time.Now(), nil
	// The version identifies what was read; the value itself is never logged.
	s.log.Info("secret loaded", "secret", s.name, "version", s.version)
}

// keepFresh re-reads the secret every interval, and at once on SIGHUP (`kill -HUP <pid>`).
func (s *cachedSecret) keepFresh(ctx context.Context, interval time.Duration, hangup <-chan os.Signal) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-hangup:
		}
		s.refresh(ctx)
	}
}

func (s *cachedSecret) serveSecretTest(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	value, loaded, err := s.value, !s.loadedAt.IsZero(), s.lastError
	s.mu.RUnlock()
	if !loaded {
		http.Error(w, fmt.Sprintf("The app could not read its secret: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "Secret value: %s\n\nThis page shows a secret only to prove the app can read the vault.\nA real app never sends a secret to a browser or writes one to a log.\n", value)
}

// serveHealth answers 200 while the last read of the secret worked, and 503 with the reason
// once it fails, so the platform (and you) can see that the app lost its access.
func (s *cachedSecret) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.RLock()
	version, loadedAt, err := s.version, s.loadedAt, s.lastError
	s.mu.RUnlock()
	if err != nil {
		http.Error(w, fmt.Sprintf("unhealthy: %v", err), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok: %s version %s loaded at %s\n", s.name, version, loadedAt.UTC().Format(time.RFC3339))
}

// explain turns the SDK's errors into what to do next.
func explain(name string, err error) error {
	var authErr *azidentity.AuthenticationFailedError
	var respErr *azcore.ResponseError
	switch {
	case errors.As(err, &authErr):
		return fmt.Errorf("the app could not sign in to Entra ID, so it has no token for Key Vault; check its credential: %w", err)
	case errors.As(err, &respErr) && respErr.StatusCode == http.StatusForbidden:
		return fmt.Errorf("access denied: the app's identity has no role that lets it read %q; assign it \"Key Vault Secrets User\" on the vault: %w", name, err)
	case errors.As(err, &respErr) && respErr.StatusCode == http.StatusNotFound:
		return fmt.Errorf("the secret %q does not exist in this vault; create it with `az keyvault secret set --name %s`: %w", name, name, err)
	}
	return err
}

func refreshInterval(log *slog.Logger) time.Duration {
	if v := os.Getenv("SECRET_REFRESH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err == nil && d > 0 {
			return d
		}
		log.Warn("SECRET_REFRESH_INTERVAL is not a positive duration such as 30m; using 1h", "value", v)
	}
	return time.Hour
}

// serve listens on $PORT (8080 by default; App Service sets it) until ctx ends, then drains.
func serve(ctx context.Context, log *slog.Logger, h http.Handler) error {
	ln, err := net.Listen("tcp", ":"+cmp.Or(os.Getenv("PORT"), "8080"))
	if err != nil {
		return fmt.Errorf("%w (is another app using the port? set PORT to choose another)", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("listening", "url", fmt.Sprintf("http://localhost:%d/api/SecretTest", ln.Addr().(*net.TCPAddr).Port))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
