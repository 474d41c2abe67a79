// Package appservice stands in for Azure App Service on Linux ("Web App for Containers") and
// for the build service of Azure Container Registry (az acr build): registries hold images
// built from a Dockerfile, App Service plans hold web apps, and a web app runs its image with
// App Service's environment (PORT, WEBSITE_*, its app settings and, with a managed identity,
// IDENTITY_ENDPOINT and IDENTITY_HEADER) behind https://{name}.azurewebsites.net.
//
// There is no container engine here, and the tutorial's images are Go programs, so an "image"
// is the binary that the Dockerfile's `go build` step produces: a build runs that step natively
// on this machine (with the privileges of the local cloud, as `go run` would), and a web app
// runs the binary as a child process. What the platform decides around a start is emulated as
// Azure does it: the image is pulled only if the app may pull it (AcrPull for its managed
// identity), an image that was never built is "manifest unknown", and every start gets a new
// identity endpoint with a new header.
//
// Left out on purpose: real containers and any other Dockerfile step (only the go build runs;
// the image's entrypoint is assumed to be its output), Windows apps and code (non-container)
// deployments, scaling out and plan capacity, deployment slots, custom domains and
// certificates, Kudu (the .scm. site), registry admin users and passwords, Docker Hub and
// other registries, automatic restarts of a crashed app, and keeping app logs across a
// restart of the local cloud (they live in memory, 1 MiB per app).
package appservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

// DNS suffixes of the hosts this package answers for or names.
const (
	// DNSSuffix is the domain of every web app: https://{name}.azurewebsites.net.
	DNSSuffix = "azurewebsites.net"
	// RegistryDNSSuffix is the domain of every registry's login server: {name}.azurecr.io.
	RegistryDNSSuffix = "azurecr.io"
)

// Site states, as ARM reports them in properties.state.
const (
	StateRunning = "Running"
	StateStopped = "Stopped"
)

// Run statuses, as ACR reports them.
const (
	RunSucceeded = "Succeeded"
	RunFailed    = "Failed"
)

// Errors of the management methods; callers turn them into ARM's error codes.
var (
	ErrNotFound        = errors.New("not found")
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrAlreadyExists: registry and web app names are global on Azure (they are DNS names).
	ErrAlreadyExists = errors.New("name already in use")
	// ErrConflict: the resource is in use (a plan that still has web apps).
	ErrConflict = errors.New("conflict")
	ErrClosed   = errors.New("the local App Service is closed")
)

// Limits.
const (
	maxContextBytes   = 200 << 20 // uncompressed build context, and the uploaded blob
	maxContextEntries = 100_000
	maxSiteLog        = 1 << 20  // kept app log per web app
	maxRunLog         = 64 << 10 // kept log per build run
	maxRunsKept       = 50       // per registry, newest kept
	// startTimeout is App Service's default container start time limit; the app setting
	// WEBSITES_CONTAINER_START_TIME_LIMIT (seconds, at most 1800) changes it, as on Azure. It is
	// long because an app may do slow work, such as reading its secrets, before it listens.
	startTimeout    = 230 * time.Second
	maxStartTimeout = 1800 * time.Second
	stopTimeout     = 10 * time.Second
)

// Options configure a Service.
type Options struct {
	Directory *directory.Directory // required: managed identities and AcrPull decisions
	Identity  *identity.Service    // required: the managed identity endpoint of each app start
	// TenantID is the tenant of the web apps' system-assigned identities (required).
	TenantID string
	// ChildEnv builds an app's environment from base and the platform's variables (extra):
	// localcloud.Cloud.ChildEnv, which adds the proxy and CA that make the app reach the local
	// cloud. Variables in extra come last, so they win over base. nil = base and extra only.
	ChildEnv func(base []string, extra ...string) []string
	Logger   *slog.Logger     // nil = discard; one line per platform event
	Now      func() time.Time // nil = time.Now
	// Store keeps registries, the image index, build runs, plans and web apps (not processes);
	// nil = memory only.
	Store *store.File
	// WorkDir holds built images, uploaded build contexts and the apps' home folders. "" = a
	// temporary folder that Close removes. Give one whenever Store is a file: the image index
	// points into it.
	WorkDir string
}

// Service is the local App Service and container registry. It is safe for concurrent use.
type Service struct {
	dir       *directory.Directory
	identity  *identity.Service
	tenantID  string
	childEnv  func(base []string, extra ...string) []string
	log       *slog.Logger
	now       func() time.Time
	store     *store.File
	workDir   string
	tempDir   bool
	transport *http.Transport // to the apps' loopback ports

	// ctx ends when Close begins: it cancels builds and waits for apps to listen.
	ctx    context.Context
	cancel context.CancelFunc
	builds sync.WaitGroup

	// mu guards st, sites, closed and every site's proc. It is never held while waiting for a
	// process or a build; a site's op lock, when both are needed, is taken first.
	mu     sync.Mutex
	st     state
	sites  map[string]*siteRuntime // by lower-case name, one per entry of st.Sites
	closed bool
}

// state is everything the store persists.
type state struct {
	Registries map[string]*registryState `json:"registries"` // by lower-case name
	Plans      map[string]*Plan          `json:"plans"`      // by lower-case name
	Sites      map[string]*siteState     `json:"sites"`      // by lower-case name
}

// New opens the service and starts the web apps that were running when its state was saved.
func New(opts Options) (_ *Service, err error) {
	if opts.Directory == nil || opts.Identity == nil || opts.TenantID == "" {
		return nil, errors.New("appservice: Options.Directory, Identity and TenantID are required")
	}
	s := &Service{
		dir: opts.Directory, identity: opts.Identity, tenantID: opts.TenantID,
		childEnv: opts.ChildEnv, log: opts.Logger, now: opts.Now, store: opts.Store, workDir: opts.WorkDir,
		sites: map[string]*siteRuntime{},
	}
	if s.childEnv == nil {
		s.childEnv = func(base []string, extra ...string) []string { return append(base, extra...) }
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("service", "appservice")
	if s.now == nil {
		s.now = time.Now
	}
	if s.store == nil {
		s.store = store.Memory()
	}
	if s.workDir == "" {
		if s.workDir, err = os.MkdirTemp("", "localcloud-appservice-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	} else if err := os.MkdirAll(s.workDir, 0o700); err != nil {
		return nil, err
	}
	if s.workDir, err = filepath.Abs(s.workDir); err != nil {
		return nil, err
	}
	s.transport = &http.Transport{
		Proxy:               nil, // the apps are on loopback: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if _, err := s.store.Load(&s.st); err != nil {
		return nil, err
	}
	if s.st.Registries == nil {
		s.st.Registries = map[string]*registryState{}
	}
	if s.st.Plans == nil {
		s.st.Plans = map[string]*Plan{}
	}
	if s.st.Sites == nil {
		s.st.Sites = map[string]*siteState{}
	}
	var running []string
	for key, st := range s.st.Sites {
		s.sites[key] = newSiteRuntime(s.now)
		if st.State == StateRunning {
			running = append(running, key)
		}
	}
	for _, key := range running {
		// One app that cannot start must not keep the others, or the local cloud, from starting.
		rt := s.sites[key]
		rt.op.Lock()
		if err := s.syncIdentity(key); err != nil {
			s.failStart(key, rt, err.Error())
		} else {
			s.start(key, rt)
		}
		rt.op.Unlock()
	}
	return s, nil
}

// mutate runs f under the lock and saves the state. If f or saving fails the change is undone
// in memory too, so the service never acknowledges a change it did not keep.
func (s *Service) mutate(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mutateLocked(f)
}

func (s *Service) mutateLocked(f func() error) error {
	if s.closed {
		return ErrClosed
	}
	before, err := json.Marshal(&s.st)
	if err != nil {
		return err
	}
	undo := func() {
		var st state
		if err := json.Unmarshal(before, &st); err == nil {
			s.st = st
		}
	}
	if err := f(); err != nil {
		undo()
		return err
	}
	if err := s.store.Save(&s.st); err != nil {
		undo()
		return fmt.Errorf("saving the App Service state: %w", err)
	}
	return nil
}

// Close stops every app (SIGTERM, then a kill after a bounded wait), which closes their
// identity endpoints, cancels the builds in progress and waits for them. The saved state keeps
// each app's Running or Stopped state, so that New starts them again.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	rts := maps.Clone(s.sites)
	s.mu.Unlock()

	s.cancel()
	for key, rt := range rts {
		rt.op.Lock()
		s.stop(key, rt, "the local cloud is shutting down")
		rt.op.Unlock()
	}
	s.builds.Wait()
	s.transport.CloseIdleConnections()
	if s.tempDir {
		return os.RemoveAll(s.workDir)
	}
	return nil
}

// validName reports whether name is 1..max characters of letters, digits and the extra runes,
// starting and ending with a letter or digit.
func validName(name string, minLen, maxLen int, extra string) bool {
	if len(name) < minLen || len(name) > maxLen {
		return false
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if !strings.ContainsRune(extra, c) || i == 0 || i == len(name)-1 {
			return false
		}
	}
	return true
}

// resourceGroupOf splits an ARM resource ID into its subscription and resource group.
func resourceGroupOf(resourceID string) (subscription, group string) {
	parts := strings.Split(strings.Trim(resourceID, "/"), "/")
	for i := 0; i+1 < len(parts); i += 2 {
		switch strings.ToLower(parts[i]) {
		case "subscriptions":
			subscription = parts[i+1]
		case "resourcegroups":
			group = parts[i+1]
		}
	}
	return subscription, group
}

func checkResourceID(kind, resourceID string) error {
	if !strings.HasPrefix(resourceID, "/subscriptions/") {
		return fmt.Errorf("%w: %s resource ID %q must be an ARM resource ID (/subscriptions/.../resourceGroups/...)", ErrInvalidArgument, kind, resourceID)
	}
	return nil
}
