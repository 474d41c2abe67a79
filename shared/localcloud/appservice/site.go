package appservice

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
)

// Plan is an App Service plan (a server farm): what the web apps in it run on. Here it only
// has to exist; its SKU is kept for show.
type Plan struct {
	Name, ResourceID, SKU string
}

// CreatePlan creates a plan, or updates its SKU when it exists with the same resource ID. Plan
// names are unique in the local cloud (Azure only needs them unique in a resource group).
func (s *Service) CreatePlan(name, resourceID, sku string) (Plan, error) {
	if !validName(name, 1, 60, "-_") {
		return Plan{}, fmt.Errorf("%w: plan name %q must be 1-60 letters, digits, '-' and '_'", ErrInvalidArgument, name)
	}
	if err := checkResourceID("plan", resourceID); err != nil {
		return Plan{}, err
	}
	var p Plan
	err := s.mutate(func() error {
		key := strings.ToLower(name)
		if old, ok := s.st.Plans[key]; ok && !strings.EqualFold(old.ResourceID, resourceID) {
			return fmt.Errorf("%w: an App Service plan named %s already exists in the local cloud (%s)", ErrAlreadyExists, name, old.ResourceID)
		}
		p = Plan{Name: name, ResourceID: resourceID, SKU: sku}
		s.st.Plans[key] = &p
		return nil
	})
	return p, err
}

// Plan looks a plan up by name.
func (s *Service) Plan(name string) (Plan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.st.Plans[strings.ToLower(name)]
	if !ok {
		return Plan{}, false
	}
	return *p, true
}

// DeletePlan deletes a plan that no web app uses any more; Azure refuses to delete one that
// still has apps (ErrConflict).
func (s *Service) DeletePlan(name string) error {
	return s.mutate(func() error {
		key := strings.ToLower(name)
		p, ok := s.st.Plans[key]
		if !ok {
			return fmt.Errorf("%w: App Service plan %s", ErrNotFound, name)
		}
		for _, st := range s.st.Sites {
			if s.planLocked(st.Spec.PlanID) == p {
				return fmt.Errorf("%w: the App Service plan %s still has the web app %s; delete the app first", ErrConflict, name, st.Spec.Name)
			}
		}
		delete(s.st.Plans, key)
		return nil
	})
}

// planLocked finds a plan by resource ID or name (az takes either for --plan); nil if none.
func (s *Service) planLocked(planID string) *Plan {
	for _, p := range s.st.Plans {
		if strings.EqualFold(p.ResourceID, planID) || strings.EqualFold(p.Name, planID) {
			return p
		}
	}
	return nil
}

// SiteSpec is what a web app's owner decides about it.
type SiteSpec struct {
	Name       string
	ResourceID string
	PlanID     string // the plan's resource ID (serverFarmId) or name
	// Image is "{registry}.azurecr.io/{repository}:{tag}" (linuxFxVersion without "DOCKER|"),
	// or "" for an app with nothing deployed yet.
	Image                      string
	AppSettings                map[string]string
	SystemAssignedIdentity     bool
	ACRUseManagedIdentityCreds bool
}

// Site is a web app: its spec and what the platform made of it.
type Site struct {
	SiteSpec
	DefaultHostName string // {name}.azurewebsites.net
	State           string // StateRunning or StateStopped: what the owner asked for
	PrincipalID     string // the system-assigned identity's object ID; "" when it is off
	// LastError says why the app is not serving although it should (pull failed, exited,
	// never listened on PORT); "" when the last start worked. Logs has the details.
	LastError string
}

type siteState struct {
	Spec        SiteSpec `json:"spec"`
	State       string   `json:"state"`
	PrincipalID string   `json:"principalId,omitempty"`
	LastError   string   `json:"lastError,omitempty"`
}

// siteRuntime is a web app's live part, which is not persisted.
type siteRuntime struct {
	// op serializes the app's starts, stops and changes. It is held across a start, which can
	// take seconds; Service.mu is never held while taking it.
	op   sync.Mutex
	logs *logBuffer
	proc *process // the current process or nil; guarded by Service.mu
}

func newSiteRuntime(now func() time.Time) *siteRuntime {
	return &siteRuntime{logs: &logBuffer{now: now}}
}

// process is one start of an app.
type process struct {
	cmd   *exec.Cmd
	port  int
	proxy *httputil.ReverseProxy
	// ready is closed once the start is decided: the app listens, has exited or never will.
	ready chan struct{}
	// exited is closed once the process is gone and its identity endpoint closed.
	exited   chan struct{}
	exitErr  error       // written before exited is closed
	stopping atomic.Bool // the platform stopped it: its exit is no failure
	// started and gone decide, under Service.mu, who reports an exit right after the app
	// listened: the start or the process's waiter, whichever comes second.
	started, gone bool
}

// CreateSite creates a web app and, if it has an image, starts it. A start that fails (the
// image can't be pulled, the app exits or never listens) does not fail the creation, as on
// Azure: the Site's LastError and the app's Logs say what happened. Creating a site again with
// the same resource ID updates it; names are global, so a name used by another resource is
// ErrAlreadyExists.
func (s *Service) CreateSite(spec SiteSpec) (Site, error) {
	if err := checkSpec(&spec); err != nil {
		return Site{}, err
	}
	key := strings.ToLower(spec.Name)
	s.mu.Lock()
	if old, ok := s.st.Sites[key]; ok {
		same := strings.EqualFold(old.Spec.ResourceID, spec.ResourceID)
		s.mu.Unlock()
		if same {
			return s.UpdateSite(spec)
		}
		return Site{}, fmt.Errorf("%w: the web app name %s is taken (%s.%s); web app names are global, choose another", ErrAlreadyExists, spec.Name, key, DNSSuffix)
	}
	rt := newSiteRuntime(s.now)
	rt.op.Lock() // cannot block: nobody else has rt yet
	defer rt.op.Unlock()
	err := s.mutateLocked(func() error {
		if s.planLocked(spec.PlanID) == nil {
			return fmt.Errorf("%w: App Service plan %q (create it first: az appservice plan create)", ErrNotFound, spec.PlanID)
		}
		s.st.Sites[key] = &siteState{Spec: spec, State: StateRunning}
		return nil
	})
	if err == nil {
		s.sites[key] = rt
	}
	s.mu.Unlock()
	if err != nil {
		return Site{}, err
	}
	s.log.Info("web app created", "site", key, "image", spec.Image, "app_settings", len(spec.AppSettings), "identity", spec.SystemAssignedIdentity)
	if err := s.syncIdentity(key); err != nil {
		s.failStart(key, rt, err.Error())
		return s.siteOf(key), err
	}
	s.start(key, rt)
	return s.siteOf(key), nil
}

// UpdateSite replaces a web app's spec. Changing its image, app settings, identity or pull
// credentials restarts it, as Azure does; an unchanged spec restarts it only if it is not
// serving (so a retry after fixing its image or its AcrPull role works). Turning the identity
// off deletes its principal; turning it on makes a new one.
func (s *Service) UpdateSite(spec SiteSpec) (Site, error) {
	if err := checkSpec(&spec); err != nil {
		return Site{}, err
	}
	key, rt, err := s.lockSite(spec.Name)
	if err != nil {
		return Site{}, err
	}
	defer rt.op.Unlock()
	var old SiteSpec
	var running, serving bool
	err = s.mutate(func() error {
		st := s.st.Sites[key]
		if !strings.EqualFold(st.Spec.ResourceID, spec.ResourceID) {
			return fmt.Errorf("%w: the web app %s has the resource ID %s, not %s", ErrInvalidArgument, spec.Name, st.Spec.ResourceID, spec.ResourceID)
		}
		if s.planLocked(spec.PlanID) == nil {
			return fmt.Errorf("%w: App Service plan %q", ErrNotFound, spec.PlanID)
		}
		old, st.Spec = st.Spec, spec
		running = st.State == StateRunning
		serving = rt.proc != nil && !rt.proc.isGone() && st.LastError == ""
		return nil
	})
	if err != nil {
		return Site{}, err
	}
	changed := old.Image != spec.Image || !maps.Equal(old.AppSettings, spec.AppSettings) ||
		old.SystemAssignedIdentity != spec.SystemAssignedIdentity || old.ACRUseManagedIdentityCreds != spec.ACRUseManagedIdentityCreds
	s.log.Info("web app updated", "site", key, "image", spec.Image, "app_settings", len(spec.AppSettings), "identity", spec.SystemAssignedIdentity, "restart", running && (changed || !serving))
	if err := s.syncIdentity(key); err != nil {
		s.failStart(key, rt, err.Error())
		return s.siteOf(key), err
	}
	if running && (changed || !serving) {
		s.stop(key, rt, "the web app's configuration changed")
		s.start(key, rt)
	}
	return s.siteOf(key), nil
}

// Restart stops a running web app and starts it again: a new process, a new identity
// endpoint and IDENTITY_HEADER, and a new pull of its image's tag. A stopped app stays stopped.
func (s *Service) Restart(name string) error {
	key, rt, err := s.lockSite(name)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	if site := s.siteOf(key); site.State != StateRunning {
		return nil
	}
	s.stop(key, rt, "restart requested")
	if err := s.syncIdentity(key); err != nil {
		s.failStart(key, rt, err.Error())
		return err
	}
	s.start(key, rt)
	return nil
}

// Stop stops a web app (az webapp stop): its process ends and it answers 403 "stopped".
func (s *Service) Stop(name string) error {
	key, rt, err := s.lockSite(name)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	if err := s.mutate(func() error {
		s.st.Sites[key].State = StateStopped
		s.st.Sites[key].LastError = ""
		return nil
	}); err != nil {
		return err
	}
	s.stop(key, rt, "stop requested")
	return nil
}

// Start starts a stopped web app (az webapp start); a running one is left as it is.
func (s *Service) Start(name string) error {
	key, rt, err := s.lockSite(name)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	if site := s.siteOf(key); site.State == StateRunning {
		return nil
	}
	if err := s.mutate(func() error { s.st.Sites[key].State = StateRunning; return nil }); err != nil {
		return err
	}
	if err := s.syncIdentity(key); err != nil {
		s.failStart(key, rt, err.Error())
		return err
	}
	s.start(key, rt)
	return nil
}

// DeleteSite stops a web app and deletes it with its system-assigned identity's principal.
// Role assignments of that principal stay behind, orphaned, as on Azure.
func (s *Service) DeleteSite(name string) error {
	key, rt, err := s.lockSite(name)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	s.stop(key, rt, "the web app is being deleted")
	var resourceID string
	if err := s.mutate(func() error {
		resourceID = s.st.Sites[key].Spec.ResourceID
		delete(s.st.Sites, key)
		delete(s.sites, key)
		return nil
	}); err != nil {
		return err
	}
	s.log.Info("web app deleted", "site", key)
	return errors.Join(s.dir.DeleteResource(resourceID), os.RemoveAll(filepath.Join(s.workDir, "sites", key)))
}

// Site looks a web app up by name.
func (s *Service) Site(name string) (Site, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.st.Sites[strings.ToLower(name)]
	if !ok {
		return Site{}, false
	}
	return st.site(), true
}

// Sites lists every web app, by name.
func (s *Service) Sites() []Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Site, 0, len(s.st.Sites))
	for _, key := range slices.Sorted(maps.Keys(s.st.Sites)) {
		out = append(out, s.st.Sites[key].site())
	}
	return out
}

// Logs is a web app's kept log (az webapp log tail, the container log): what its processes
// wrote to stdout and stderr and the platform's lines about pulls, starts and stops. "" for an
// unknown app.
func (s *Service) Logs(name string) string {
	s.mu.Lock()
	rt, ok := s.sites[strings.ToLower(name)]
	s.mu.Unlock()
	if !ok {
		return ""
	}
	return rt.logs.String()
}

func (st *siteState) site() Site {
	spec := st.Spec
	spec.AppSettings = maps.Clone(spec.AppSettings)
	return Site{
		SiteSpec: spec, DefaultHostName: strings.ToLower(spec.Name) + "." + DNSSuffix,
		State: st.State, PrincipalID: st.PrincipalID, LastError: st.LastError,
	}
}

func (s *Service) siteOf(key string) Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.st.Sites[key]; ok {
		return st.site()
	}
	return Site{}
}

func checkSpec(spec *SiteSpec) error {
	if !validName(spec.Name, 2, 60, "-") {
		return fmt.Errorf("%w: web app name %q must be 2-60 letters, digits and hyphens, not starting or ending with a hyphen", ErrInvalidArgument, spec.Name)
	}
	if err := checkResourceID("web app", spec.ResourceID); err != nil {
		return err
	}
	if spec.PlanID == "" {
		return fmt.Errorf("%w: a web app needs an App Service plan (serverFarmId)", ErrInvalidArgument)
	}
	if spec.Image != "" {
		if _, err := ParseImage(spec.Image); err != nil {
			return fmt.Errorf("%w (linuxFxVersion is DOCKER|<image>; pass the image alone)", err)
		}
	}
	for k, v := range spec.AppSettings {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: app setting %q: names must be non-empty without '=', and neither may contain NUL", ErrInvalidArgument, k)
		}
	}
	spec.AppSettings = maps.Clone(spec.AppSettings)
	return nil
}

// lockSite finds a web app and takes its op lock, checking again once it holds it that the
// app was not deleted, nor the service closed, meanwhile.
func (s *Service) lockSite(name string) (string, *siteRuntime, error) {
	key := strings.ToLower(name)
	find := func() (*siteRuntime, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return nil, ErrClosed
		}
		rt, ok := s.sites[key]
		if !ok {
			return nil, fmt.Errorf("%w: web app %s", ErrNotFound, name)
		}
		return rt, nil
	}
	rt, err := find()
	if err != nil {
		return "", nil, err
	}
	rt.op.Lock()
	if again, err := find(); err != nil || again != rt {
		rt.op.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: web app %s", ErrNotFound, name)
		}
		return "", nil, err
	}
	return key, rt, nil
}

// syncIdentity makes the directory match the spec's system-assigned identity. Callers hold the
// site's op lock.
func (s *Service) syncIdentity(key string) error {
	s.mu.Lock()
	st := s.st.Sites[key]
	want, have, resourceID := st.Spec.SystemAssignedIdentity, st.PrincipalID, st.Spec.ResourceID
	s.mu.Unlock()
	var principal string
	if want {
		sp, err := s.dir.EnableSystemAssignedIdentity(s.tenantID, resourceID)
		if err != nil {
			return fmt.Errorf("turning on the web app's managed identity: %w", err)
		}
		principal = sp.ObjectID
	} else if have != "" {
		if err := s.dir.DisableSystemAssignedIdentity(resourceID); err != nil {
			return fmt.Errorf("turning off the web app's managed identity: %w", err)
		}
	}
	if principal == have {
		return nil
	}
	s.log.Info("web app identity changed", "site", key, "principal_id", principal, "previous_principal_id", have)
	return s.mutate(func() error { s.st.Sites[key].PrincipalID = principal; return nil })
}

// start starts the app's image, as App Service does: pull (with the app's identity when it
// pulls with managed identity credentials), start with the platform's environment, and wait
// until it listens on PORT. Callers hold the site's op lock, and no process of it runs.
func (s *Service) start(key string, rt *siteRuntime) {
	s.mu.Lock()
	st, ok := s.st.Sites[key]
	if !ok || s.closed {
		s.mu.Unlock()
		return
	}
	spec, principal := st.Spec, st.PrincipalID
	s.mu.Unlock()
	if spec.Image == "" {
		s.setLastError(key, "")
		return
	}

	rt.logs.platform("INFO", "Pulling image: %s", spec.Image)
	bin, err := s.pull(spec, principal)
	if err != nil {
		s.failStart(key, rt, "Pull image failed: "+err.Error())
		return
	}
	rt.logs.platform("INFO", "Pull image %s completed", spec.Image)

	var ep *identity.Endpoint
	if principal != "" {
		if ep, err = s.identity.Start(spec.ResourceID); err != nil {
			s.failStart(key, rt, "Starting the managed identity endpoint failed: "+err.Error())
			return
		}
	}
	closeEndpoint := func() {
		if ep != nil {
			ep.Close()
		}
	}
	port, err := freePort()
	if err != nil {
		closeEndpoint()
		s.failStart(key, rt, err.Error())
		return
	}
	home := filepath.Join(s.workDir, "sites", key, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		closeEndpoint()
		s.failStart(key, rt, err.Error())
		return
	}

	cmd := exec.Command(bin)
	cmd.Env = s.appEnv(spec, port, home, ep)
	cmd.Dir = home
	cmd.Stdout, cmd.Stderr = rt.logs, rt.logs
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the output open must not hang Wait
	rt.logs.platform("INFO", "Starting container for site %s on port %d (managed identity endpoint: %t)", key, port, ep != nil)
	if err := cmd.Start(); err != nil {
		closeEndpoint()
		s.failStart(key, rt, "Starting the container failed: "+err.Error())
		return
	}
	p := &process{cmd: cmd, port: port, ready: make(chan struct{}), exited: make(chan struct{})}
	p.proxy = s.newProxy(key, spec.ResourceID, port)
	s.mu.Lock()
	rt.proc = p
	s.mu.Unlock()
	go s.wait(key, rt, p, ep)

	limit := startLimit(spec.AppSettings)
	err = s.waitListening(p, limit)
	close(p.ready)
	switch {
	case err == nil:
		s.mu.Lock()
		p.started = true
		gone := p.gone
		s.mu.Unlock()
		if gone {
			s.failStart(key, rt, "The container exited right after it started listening: "+exitText(p.exitErr))
			return
		}
		s.setLastError(key, "")
		rt.logs.platform("INFO", "Container for site %s initialized successfully and is ready to serve requests.", key)
		s.log.Info("site started", "site", key, "image", spec.Image, "pid", cmd.Process.Pid, "port", port, "identity", ep != nil)
	case s.ctx.Err() != nil:
		// Closing: Close stops the process; the saved state keeps the app Running.
	case errors.Is(err, errExited):
		s.failStart(key, rt, fmt.Sprintf("Container for site %s exited before listening on port %d (%s). Does the app listen on $PORT?", key, port, exitText(p.exitErr)))
	default:
		p.stopping.Store(true)
		terminate(p)
		s.failStart(key, rt, fmt.Sprintf("Container for site %s didn't respond to HTTP pings on port: %d within %s, failing site start. Does the app listen on $PORT? (A slow start may raise WEBSITES_CONTAINER_START_TIME_LIMIT.)", key, port, limit))
	}
}

var errExited = errors.New("the process exited")

// startLimit is how long the app may take to listen.
func startLimit(settings map[string]string) time.Duration {
	if n, err := strconv.Atoi(settings["WEBSITES_CONTAINER_START_TIME_LIMIT"]); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, maxStartTimeout)
	}
	return startTimeout
}

// waitListening waits, bounded by limit, until the app accepts connections on its port.
func (s *Service) waitListening(p *process, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	backoff := 5 * time.Millisecond
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		retry := time.NewTimer(backoff)
		select {
		case <-p.exited:
			retry.Stop()
			return errExited
		case <-deadline.C:
			retry.Stop()
			return errors.New("timed out")
		case <-s.ctx.Done():
			retry.Stop()
			return s.ctx.Err()
		case <-retry.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// wait reaps the process, closes its identity endpoint (the header dies with the process) and
// reports an exit the platform did not ask for.
func (s *Service) wait(key string, rt *siteRuntime, p *process, ep *identity.Endpoint) {
	p.exitErr = p.cmd.Wait()
	if ep != nil {
		ep.Close()
	}
	if p.stopping.Load() {
		rt.logs.platform("INFO", "Container for site %s stopped (%s)", key, exitText(p.exitErr))
	} else {
		rt.logs.platform("ERROR", "Container for site %s exited: %s", key, exitText(p.exitErr))
		s.log.Warn("site exited", "site", key, "pid", p.cmd.Process.Pid, "status", exitText(p.exitErr))
	}
	s.mu.Lock()
	p.gone = true
	report := p.started && !p.stopping.Load()
	s.mu.Unlock()
	if report {
		s.setLastError(key, "The app exited: "+exitText(p.exitErr)+". See its log for why.")
	}
	close(p.exited)
}

func (p *process) isGone() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop ends the app's process, if any: SIGTERM, then a kill after stopTimeout. Callers hold
// the site's op lock.
func (s *Service) stop(key string, rt *siteRuntime, reason string) {
	s.mu.Lock()
	p := rt.proc
	rt.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.stopping.Store(true)
	if !p.isGone() {
		rt.logs.platform("INFO", "Stopping container for site %s: %s", key, reason)
	}
	terminate(p)
	s.log.Info("site stopped", "site", key, "pid", p.cmd.Process.Pid, "reason", reason)
}

func terminate(p *process) {
	if p.isGone() {
		return
	}
	// SIGTERM lets the app drain, as docker stop does; where signals don't exist, kill.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = p.cmd.Process.Kill()
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// failStart records why the app is not serving, in its log, its LastError and the platform log.
func (s *Service) failStart(key string, rt *siteRuntime, msg string) {
	rt.logs.platform("ERROR", "%s", msg)
	s.log.Warn("site start failed", "site", key, "err", msg)
	s.setLastError(key, msg)
}

func (s *Service) setLastError(key, msg string) {
	_ = s.mutate(func() error {
		if st, ok := s.st.Sites[key]; ok {
			st.LastError = msg
		}
		return nil
	})
}

// pull finds the image's binary, with App Service's checks and Docker's error messages.
func (s *Service) pull(spec SiteSpec, principal string) (string, error) {
	ref, err := ParseImage(spec.Image)
	if err != nil {
		return "", err
	}
	regName, ok := strings.CutSuffix(ref.Registry, "."+RegistryDNSSuffix)
	if !ok {
		return "", fmt.Errorf("%s: the local cloud runs images only from its own registries ({name}.%s); build the image there with az acr build", spec.Image, RegistryDNSSuffix)
	}
	s.mu.Lock()
	reg, ok := s.st.Registries[strings.ToLower(regName)]
	var registryID string
	var img imageRecord
	var found bool
	if ok {
		registryID = reg.ResourceID
		img, found = reg.Images[ref.Repository+":"+ref.Tag]
	}
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("dial tcp: lookup %s: no such host (there is no registry %s in the local cloud)", ref.Registry, regName)
	}
	// Without managed identity credentials App Service would pull with the registry's admin
	// user and password, which the local cloud doesn't model: such pulls are let through.
	if spec.ACRUseManagedIdentityCreds {
		if principal == "" {
			return "", fmt.Errorf("unauthorized: authentication required: acrUseManagedIdentityCreds is on but the web app has no managed identity; turn on its system-assigned identity (az webapp identity assign) and grant it AcrPull on %s", registryID)
		}
		if !s.dir.IsAllowedAction(principal, directory.ActionAcrPull, registryID) {
			return "", fmt.Errorf("unauthorized: authentication required, visit https://aka.ms/acr/authorization for more information. The web app's managed identity (principal %s) may not pull from %s: az role assignment create --assignee %s --role AcrPull --scope %s, then restart the app", principal, ref.Registry, principal, registryID)
		}
	}
	if !found {
		return "", fmt.Errorf("manifest for %s not found: manifest unknown: manifest tagged by %q is not found (build it first: az acr build --registry %s --image %s:%s ...)", spec.Image, ref.Tag, regName, ref.Repository, ref.Tag)
	}
	bin := filepath.Join(s.workDir, img.Path)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("manifest for %s not found: manifest unknown: the image's file is gone from %s (build it again)", spec.Image, s.workDir)
	}
	return bin, nil
}

// appEnv is the environment App Service gives the app. The platform's variables come after the
// app settings, so a setting cannot override them, as on Azure.
func (s *Service) appEnv(spec SiteSpec, port int, home string, ep *identity.Endpoint) []string {
	subscription, group := resourceGroupOf(spec.ResourceID)
	base := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home}
	var extra []string
	for _, k := range slices.Sorted(maps.Keys(spec.AppSettings)) {
		extra = append(extra, k+"="+spec.AppSettings[k])
	}
	instance := make([]byte, 32)
	_, _ = rand.Read(instance)
	extra = append(extra,
		"PORT="+strconv.Itoa(port),
		"WEBSITE_SITE_NAME="+spec.Name,
		"WEBSITE_HOSTNAME="+strings.ToLower(spec.Name)+"."+DNSSuffix,
		"WEBSITE_RESOURCE_GROUP="+group,
		"WEBSITE_OWNER_NAME="+subscription+"+"+group+"-webspace",
		"WEBSITE_INSTANCE_ID="+hex.EncodeToString(instance),
	)
	if ep != nil {
		extra = append(extra, ep.Env()...)
	}
	return s.childEnv(base, extra...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the app: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logBuffer keeps the last maxSiteLog bytes of a web app's log, cut at a line boundary.
type logBuffer struct {
	mu  sync.Mutex
	b   []byte
	now func() time.Time
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > maxSiteLog {
		// Drop a quarter at once, so a chatty app doesn't cost a copy per write.
		cut := len(l.b) - maxSiteLog*3/4
		if i := bytes.IndexByte(l.b[cut:], '\n'); i >= 0 {
			cut += i + 1
		}
		l.b = slices.Clone(l.b[cut:])
	}
	return len(p), nil
}

// platform writes one of the platform's own lines, in App Service's docker log format.
func (l *logBuffer) platform(level, format string, args ...any) {
	fmt.Fprintf(l, "%s %-5s - %s\n", l.now().UTC().Format("2006-01-02T15:04:05.000Z"), level, fmt.Sprintf(format, args...))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
