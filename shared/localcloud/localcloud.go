// Package localcloud runs the tutorial's local cloud: Entra ID, Microsoft Graph, Azure
// Resource Manager, Key Vault, App Service (with its managed identity endpoint) and Container
// Registry builds, answering for Azure's own hostnames through an HTTPS proxy with its
// own certificate authority, so that unmodified Azure SDK code runs against it with nothing
// changed but its environment.
//
// Tests start one in-process with Start (in memory, free ports, nothing left behind after
// Close); `go run ./shared/cmd/localcloud` runs one in a terminal with its state kept in a
// folder. Each Azure service is its own package below this one; this package wires them
// together, seeds the well-known values and hands out the environment a child process needs.
package localcloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/appservice"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/arm"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/entra"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/frontdoor"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/graph"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/keyvault"
)

// Options configure a local cloud.
type Options struct {
	// Dir keeps the state (CA, signing key, directory, vaults, resource groups, registries with
	// their images, web apps) across restarts. "" keeps everything in memory, with the CA
	// certificate and the images in temporary folders removed by Close.
	Dir string
	// Reset discards the state in Dir first (the CA and the signing key too).
	Reset bool
	// Addr is where the HTTPS proxy listens; "" = a free loopback port.
	Addr string
	// Now is the clock every service uses; nil = time.Now.
	Now func() time.Time
	// Logger receives one line per request; nil = discard.
	Logger *slog.Logger
	// TokenLifetime is how long Entra's access tokens last; 0 = an hour, as on Azure. A lifetime
	// under the SDK's five-minute refresh margin makes a client that retries after a 401 sign in
	// again instead of reusing its cached token, which tests of revoked access rely on.
	TokenLifetime time.Duration
}

// Cloud is a running local cloud.
type Cloud struct {
	Directory  *directory.Directory
	Entra      *entra.Service
	KeyVault   *keyvault.Service
	Identity   *identity.Service
	Graph      *graph.Service
	AppService *appservice.Service
	ARM        *arm.Service
	Proxy      *frontdoor.Proxy
	CA         *frontdoor.CA

	dir      string
	tempDir  string // in-memory clouds: holds ca.pem, removed by Close
	caFile   string
	trustDir string // a folder holding only ca.pem: SSL_CERT_DIR
	log      *slog.Logger
}

// State files in Dir.
const (
	CAFile           = "ca.pem"
	EnvFile          = "env"
	DeveloperEnvFile = "developer.env"
	directoryFile    = "directory.json"
	keyvaultFile     = "keyvault.json"
	armFile          = "arm.json"
	appServiceFile   = "appservice.json"
	appServiceDir    = "appservice" // built images, uploaded build contexts, the apps' home folders
	trustDir         = "trust"      // ca.pem alone, for SSL_CERT_DIR
)

// Start starts a local cloud and seeds the well-known values (once: a restart keeps what is in Dir).
func Start(ctx context.Context, opts Options) (_ *Cloud, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	c := &Cloud{dir: opts.Dir, log: log}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	dirStore, kvStore, armStore, appStore := store.Memory(), store.Memory(), store.Memory(), store.Memory()
	appWorkDir := "" // in memory: a temporary folder that AppService.Close removes
	var signer *entra.Signer
	if opts.Dir != "" {
		if opts.Reset {
			if err := Reset(opts.Dir); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, err
		}
		if c.CA, err = frontdoor.LoadOrCreateCA(opts.Dir); err != nil {
			return nil, err
		}
		if signer, err = entra.LoadOrCreateSigner(opts.Dir); err != nil {
			return nil, err
		}
		dirStore = store.Open(filepath.Join(opts.Dir, directoryFile))
		kvStore = store.Open(filepath.Join(opts.Dir, keyvaultFile))
		armStore = store.Open(filepath.Join(opts.Dir, armFile))
		appStore = store.Open(filepath.Join(opts.Dir, appServiceFile))
		appWorkDir = filepath.Join(opts.Dir, appServiceDir)
		c.caFile = filepath.Join(opts.Dir, CAFile)
		c.trustDir = filepath.Join(opts.Dir, trustDir)
		if err := store.WriteFileAtomic(filepath.Join(c.trustDir, CAFile), c.CA.CertPEM(), 0o644); err != nil {
			return nil, err
		}
	} else {
		if c.CA, err = frontdoor.NewCA(); err != nil {
			return nil, err
		}
		if signer, err = entra.NewSigner(); err != nil {
			return nil, err
		}
		if c.tempDir, err = os.MkdirTemp("", "localcloud-"); err != nil {
			return nil, err
		}
		c.caFile = filepath.Join(c.tempDir, CAFile)
		c.trustDir = c.tempDir
		if err := os.WriteFile(c.caFile, c.CA.CertPEM(), 0o644); err != nil {
			return nil, err
		}
	}

	if c.Directory, err = directory.New(directory.Options{Now: now, Store: dirStore}); err != nil {
		return nil, err
	}
	c.Entra = entra.New(entra.Options{Directory: c.Directory, Signer: signer, Now: now, Logger: log, TokenLifetime: opts.TokenLifetime})
	if c.KeyVault, err = keyvault.New(keyvault.Options{Directory: c.Directory, Tokens: c.Entra, Now: now, Store: kvStore, Logger: log}); err != nil {
		return nil, err
	}
	c.Identity = identity.New(identity.Options{Directory: c.Directory, Issuer: c.Entra, Logger: log})
	if c.Graph, err = graph.New(graph.Options{Directory: c.Directory, Tokens: c.Entra, Logger: log}); err != nil {
		return nil, err
	}
	if err := c.seedWellKnown(); err != nil {
		return nil, fmt.Errorf("seeding the well-known values: %w", err)
	}

	// The proxy listens before App Service starts: the web apps it restarts get its address in
	// their environment, and reach Entra ID and Key Vault through it at once.
	c.Proxy = frontdoor.New(frontdoor.Options{CA: c.CA, Logger: log})
	c.Proxy.Handle(entra.Host, c.Entra.Handler())
	c.Proxy.Handle("*."+keyvault.DNSSuffix, c.KeyVault.Handler())
	c.Proxy.Handle(graph.Host, c.Graph.Handler())
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if _, err := c.Proxy.Start(addr); err != nil {
		return nil, fmt.Errorf("%w (another local cloud may be running; stop it or choose another --addr)", err)
	}
	if c.AppService, err = appservice.New(appservice.Options{
		Directory: c.Directory, Identity: c.Identity, TenantID: TenantID, ChildEnv: c.PlatformEnv,
		Logger: log, Now: now, Store: appStore, WorkDir: appWorkDir,
	}); err != nil {
		return nil, err
	}
	c.Proxy.Handle("*."+appservice.DNSSuffix, c.AppService.Handler())
	c.Proxy.Handle("*.scm."+appservice.DNSSuffix, c.AppService.Handler())
	if c.ARM, err = arm.New(arm.Options{
		SubscriptionID: SubscriptionID, TenantID: TenantID, Directory: c.Directory, Tokens: c.Entra,
		KeyVault: c.KeyVault, AppService: c.AppService, Store: armStore, Now: now, Logger: log,
	}); err != nil {
		return nil, err
	}
	// Resource Manager shows the well-known vault where its resource ID says it is.
	if err := c.ARM.AdoptVault(ResourceGroup, VaultName, Location); err != nil {
		return nil, fmt.Errorf("seeding the well-known values: %w", err)
	}
	c.Proxy.Handle(arm.Host, c.ARM.Handler())
	c.Proxy.Handle(arm.BlobHost, c.ARM.BlobHandler())
	if opts.Dir != "" {
		if err := c.writeEnvFiles(); err != nil {
			return nil, err
		}
	}
	return c, ctx.Err()
}

// Reset removes the local cloud's own files from dir, and nothing else.
func Reset(dir string) error {
	for _, name := range []string{CAFile, "ca-key.pem", "signing-key.pem", directoryFile, keyvaultFile, armFile, appServiceFile, EnvFile, DeveloperEnvFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, trustDir)); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(dir, appServiceDir))
}

// seedWellKnown creates the well-known tenant, vault, secret and principals the first time.
func (c *Cloud) seedWellKnown() error {
	d := c.Directory
	if _, err := d.AddTenant(TenantID, "Local Cloud"); err != nil {
		return err
	}
	// A vault made anew (first start, or after its resource group was deleted) gets the
	// well-known roles again; otherwise what the user changed since is left as it is.
	_, hadVault := c.KeyVault.Vault(VaultName)
	if !hadVault {
		if _, err := c.KeyVault.CreateVault(VaultName, TenantID, VaultResourceID(VaultName)); err != nil {
			return err
		}
		if _, err := c.KeyVault.SetSecret(VaultName, SecretName, SecretValue); err != nil {
			return err
		}
	}
	for _, p := range []struct{ name, clientID, secret, role string }{
		{DeveloperDisplayName, DeveloperClientID, DeveloperClientSecret, directory.KeyVaultSecretsOfficer.RoleName},
		{Step01DisplayName, Step01ClientID, Step01ClientSecret, directory.KeyVaultSecretsUser.RoleName},
	} {
		sp, ok := d.ServicePrincipalByAppID(TenantID, p.clientID)
		if ok && hadVault {
			continue
		}
		switch _, hasApp := d.Application(TenantID, p.clientID); {
		case !ok && hasApp: // the principal alone was deleted
			var err error
			if sp, err = d.CreateServicePrincipal(TenantID, p.clientID); err != nil {
				return err
			}
		case !ok:
			app, err := c.registerApp(p.name, p.clientID, p.secret)
			if err != nil {
				return err
			}
			sp.ObjectID = app.ObjectID
		}
		if _, err := d.AssignRole(sp.ObjectID, p.role, VaultResourceID(VaultName)); err != nil {
			return err
		}
	}
	return nil
}

// App is an app registration with its service principal and, when it has one, its client
// secret (shown once, as Entra does).
type App struct {
	DisplayName  string
	ClientID     string // appId
	ObjectID     string // the service principal's object ID: what role assignments name
	ClientSecret string
}

func (c *Cloud) registerApp(name, clientID, secret string) (App, error) {
	app, err := c.Directory.CreateApplication(TenantID, name, clientID)
	if err != nil {
		return App{}, err
	}
	sp, err := c.Directory.CreateServicePrincipal(TenantID, app.AppID)
	if err != nil {
		return App{}, err
	}
	_, value, err := c.Directory.AddPassword(TenantID, app.AppID, directory.SecretOptions{DisplayName: "rbac", Value: secret})
	if err != nil {
		return App{}, err
	}
	return App{DisplayName: name, ClientID: app.AppID, ObjectID: sp.ObjectID, ClientSecret: value}, nil
}

// RegisterApp registers an app with a service principal and a new client secret, as
// `az ad sp create-for-rbac` does, without any role.
func (c *Cloud) RegisterApp(displayName string) (App, error) {
	return c.registerApp(displayName, "", "")
}

// AssignRole grants a built-in role to a principal at a scope (VaultResourceID or SecretScope).
func (c *Cloud) AssignRole(principalID, role, scope string) (directory.RoleAssignment, error) {
	return c.Directory.AssignRole(principalID, role, scope)
}

// CreateVault creates a vault in the local subscription, in the local tenant.
func (c *Cloud) CreateVault(name string) (keyvault.Vault, error) {
	return c.KeyVault.CreateVault(name, TenantID, VaultResourceID(name))
}

// SetSecret writes a secret into a vault of this local cloud, with no token: seeding.
func (c *Cloud) SetSecret(vault, name, value string) error {
	_, err := c.KeyVault.SetSecret(vault, name, value)
	return err
}

// EnableManagedIdentity turns on the system-assigned identity of a web app of the local
// subscription (what `az webapp identity assign` does): a new service principal.
func (c *Cloud) EnableManagedIdentity(site string) (directory.ServicePrincipal, error) {
	return c.Directory.EnableSystemAssignedIdentity(TenantID, WebAppResourceID(site))
}

// DisableManagedIdentity turns it off: the platform deletes the service principal.
func (c *Cloud) DisableManagedIdentity(site string) error {
	return c.Directory.DisableSystemAssignedIdentity(WebAppResourceID(site))
}

// ProxyURL is the value of HTTPS_PROXY.
func (c *Cloud) ProxyURL() string { return c.Proxy.URL().String() }

// CAFile is the path of the CA certificate (the value of SSL_CERT_FILE).
func (c *Cloud) CAFile() string { return c.caFile }

// HTTPClient goes through the local cloud and trusts only its CA: for tests and tools that
// talk to the emulated services from inside this process.
func (c *Cloud) HTTPClient() *http.Client { return &http.Client{Transport: c.Proxy.Transport()} }

// TransportEnv is what makes a process reach the local cloud instead of Azure: the proxy,
// the CA, and no proxying of loopback (Node proxies every URL otherwise, the managed identity
// endpoint included). HTTP_PROXY is left unset on purpose: the IMDS probe must fail fast.
// SSL_CERT_DIR names a folder holding only the local CA: Go would otherwise also parse every
// system root at a process's first TLS handshake, a third of a cold start, for hosts that
// the proxy refuses anyway.
func (c *Cloud) TransportEnv() []string {
	env := []string{
		"HTTPS_PROXY=" + c.ProxyURL(),
		"NO_PROXY=127.0.0.1,localhost,::1",
		"SSL_CERT_FILE=" + c.caFile,
		"SSL_CERT_DIR=" + c.trustDir,
		"NODE_EXTRA_CA_CERTS=" + c.caFile,
		CAFileEnv + "=" + c.caFile,
	}
	if !ReadsSSLCertFile() {
		env = append(env, "GODEBUG=x509usefallbackroots=1")
	}
	return env
}

// ReadsSSLCertFile reports whether Go honours SSL_CERT_FILE here: on Linux and the BSDs it does;
// on macOS and Windows it asks the system's verifier, and a launcher must install the local CA
// with x509.SetFallbackRoots instead (see package launch).
func ReadsSSLCertFile() bool {
	switch runtime.GOOS {
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly", "solaris", "illumos", "aix":
		return true
	}
	return false
}

// CAFileEnv names the CA file for launchers on systems where Go ignores SSL_CERT_FILE.
const CAFileEnv = "LOCALCLOUD_CA_FILE"

// Env is the contents of DIR/env: the transport, the tenant and the well-known vault's URL, and
// no credential. AZURE_TOKEN_CREDENTIALS=prod keeps DefaultAzureCredential from reaching for a
// developer's real `az` login and sending a real Azure token here.
func (c *Cloud) Env() []string {
	return append(c.TransportEnv(),
		"AZURE_TENANT_ID="+TenantID,
		"AZURE_KEYVAULT_URL="+VaultURL,
		"AZURE_TOKEN_CREDENTIALS=prod",
	)
}

// DeveloperEnv is the contents of DIR/developer.env: the developer principal's credential, in
// the variables azidentity's EnvironmentCredential reads.
func (c *Cloud) DeveloperEnv() []string {
	return []string{
		"AZURE_TENANT_ID=" + TenantID,
		"AZURE_CLIENT_ID=" + DeveloperClientID,
		"AZURE_CLIENT_SECRET=" + DeveloperClientSecret,
	}
}

// ChildEnv is a child process's environment: base (usually os.Environ()) with everything that
// could point it at real Azure, or at another proxy or CA, removed; then Env; then extra.
func (c *Cloud) ChildEnv(base []string, extra ...string) []string {
	return append(append(ScrubEnv(base), c.Env()...), extra...)
}

// PlatformEnv is what the local App Service starts a web app with: base scrubbed, the transport
// to reach the local cloud, then extra (App Service's own variables and the app settings). Unlike
// ChildEnv it adds no AZURE_KEYVAULT_URL or AZURE_TENANT_ID: on Azure an app gets those only
// from its app settings, so a forgotten setting must fail here too.
func (c *Cloud) PlatformEnv(base []string, extra ...string) []string {
	return append(append(ScrubEnv(base), c.TransportEnv()...), extra...)
}

// ScrubEnv drops inherited variables that would change where a process authenticates or what
// it trusts: AZURE_*, IDENTITY_*, MSI_*, IMDS_ENDPOINT, *_PROXY, SSL_CERT_*, NODE_EXTRA_CA_CERTS,
// LOCALCLOUD_CA_FILE.
func ScrubEnv(base []string) []string {
	out := make([]string, 0, len(base))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		u := strings.ToUpper(k)
		switch {
		case strings.HasPrefix(u, "AZURE_"), strings.HasPrefix(u, "IDENTITY_"), strings.HasPrefix(u, "MSI_"),
			u == "IMDS_ENDPOINT", strings.HasSuffix(u, "_PROXY"), strings.HasPrefix(u, "SSL_CERT_"),
			u == "NODE_EXTRA_CA_CERTS", u == CAFileEnv:
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (c *Cloud) writeEnvFiles() error {
	write := func(name string, lines []string, perm os.FileMode) error {
		return store.WriteFileAtomic(filepath.Join(c.dir, name), []byte(strings.Join(lines, "\n")+"\n"), perm)
	}
	if err := write(EnvFile, c.Env(), 0o644); err != nil {
		return err
	}
	return write(DeveloperEnvFile, c.DeveloperEnv(), 0o600)
}

// Close stops the local cloud: the web apps first, then the proxy. State in Dir stays (the apps
// that were running start again next time); an in-memory cloud leaves no files behind.
func (c *Cloud) Close() error {
	var errs []error
	if c.AppService != nil {
		errs = append(errs, c.AppService.Close())
	}
	if c.Proxy != nil {
		errs = append(errs, c.Proxy.Close())
	}
	if c.tempDir != "" {
		errs = append(errs, os.RemoveAll(c.tempDir))
	}
	return errors.Join(errs...)
}
