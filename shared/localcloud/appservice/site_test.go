package appservice

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/store"
)

func TestAppGetsAppServiceEnvironmentThroughTheFrontDoor(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		// What localcloud.Cloud.ChildEnv does: the transport first, the platform's variables last.
		o.ChildEnv = func(base []string, extra ...string) []string {
			return append(append(base, "HTTPS_PROXY=http://127.0.0.1:1", "GREETING=from the base"), extra...)
		}
	})
	site := f.createSite(t, SiteSpec{Name: "Env-App", Image: testImage, AppSettings: map[string]string{
		"GREETING": "hello", "DB_PASSWORD": "s3cr3t-value", "PORT": "1",
	}})
	if site.State != StateRunning || site.LastError != "" || site.DefaultHostName != "env-app.azurewebsites.net" {
		t.Fatalf("site = %+v", site)
	}
	reply := callApp(t, f.svc, "env-app")
	for k, want := range map[string]string{
		"WEBSITE_SITE_NAME":      "Env-App",
		"WEBSITE_HOSTNAME":       "env-app.azurewebsites.net",
		"WEBSITE_RESOURCE_GROUP": testGroup,
		"WEBSITE_OWNER_NAME":     testSubscription + "+" + testGroup + "-webspace",
		"GREETING":               "hello", // an app setting wins over the base environment
		"DB_PASSWORD":            "s3cr3t-value",
		"HTTPS_PROXY":            "http://127.0.0.1:1",
	} {
		if got := reply.Env[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if reply.Env["PORT"] == "1" || reply.Env["PORT"] == "" {
		t.Errorf("PORT = %q: the platform's port must win over an app setting", reply.Env["PORT"])
	}
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER"} {
		if _, ok := reply.Env[k]; ok {
			t.Errorf("%s is set for an app without a managed identity", k)
		}
	}
	if reply.Host != "env-app.azurewebsites.net" || reply.Path != "/env?x=1" {
		t.Errorf("the app got host %q path %q", reply.Host, reply.Path)
	}
	for k, want := range map[string]string{"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Host": "env-app.azurewebsites.net", "X-Original-Url": "/env?x=1", "X-Client-Ip": "192.0.2.7"} {
		if got := reply.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if logs := f.svc.Logs("env-app"); !strings.Contains(logs, "listening on") || !strings.Contains(logs, "Pulling image: "+testImage) {
		t.Errorf("the app's log lacks its output or the platform's lines:\n%s", logs)
	}
	if out := f.logs.String(); strings.Contains(out, "s3cr3t-value") || !strings.Contains(out, "site started") {
		t.Errorf("the platform log must say the site started and never show an app setting's value:\n%s", out)
	}
}

func TestIdentityHeaderChangesOnEveryStart(t *testing.T) {
	f := newFixture(t)
	site := f.createSite(t, SiteSpec{Name: "mi-app", Image: testImage, SystemAssignedIdentity: true})
	sp, ok := f.dir.ServicePrincipal(site.PrincipalID)
	if !ok || sp.ManagedIdentityResourceID != siteID("mi-app") {
		t.Fatalf("principal %q: %+v, %v", site.PrincipalID, sp, ok)
	}
	first := callApp(t, f.svc, "mi-app")
	if first.Env["IDENTITY_ENDPOINT"] == "" || first.Env["IDENTITY_HEADER"] == "" {
		t.Fatalf("no identity endpoint in the app's environment: %v", first.Env)
	}
	if err := f.svc.Restart("mi-app"); err != nil {
		t.Fatal(err)
	}
	second := callApp(t, f.svc, "mi-app")
	if second.PID == first.PID {
		t.Error("Restart kept the same process")
	}
	if second.Env["IDENTITY_HEADER"] == first.Env["IDENTITY_HEADER"] || second.Env["IDENTITY_ENDPOINT"] == first.Env["IDENTITY_ENDPOINT"] {
		t.Error("a restart must give the app a new identity endpoint and header")
	}
	if again, _ := f.svc.Site("mi-app"); again.PrincipalID != site.PrincipalID {
		t.Errorf("a restart changed the principal: %s -> %s", site.PrincipalID, again.PrincipalID)
	}
	// The old endpoint died with the old process.
	u, err := url.Parse(first.Env["IDENTITY_ENDPOINT"])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", u.Host); err == nil {
		c.Close()
		t.Error("the first start's identity endpoint still accepts connections")
	}
	if out := f.logs.String(); strings.Contains(out, first.Env["IDENTITY_HEADER"]) || strings.Contains(out, second.Env["IDENTITY_HEADER"]) {
		t.Errorf("the platform log shows an IDENTITY_HEADER:\n%s", out)
	}
}

func TestTurningIdentityOffDeletesThePrincipal(t *testing.T) {
	f := newFixture(t)
	spec := SiteSpec{Name: "mi-off", ResourceID: siteID("mi-off"), PlanID: planID(), Image: testImage, SystemAssignedIdentity: true}
	site := f.createSite(t, spec)
	spec.SystemAssignedIdentity = false
	updated, err := f.svc.UpdateSite(spec)
	if err != nil {
		t.Fatal(err)
	}
	if updated.PrincipalID != "" {
		t.Errorf("PrincipalID = %q after turning the identity off", updated.PrincipalID)
	}
	if _, ok := f.dir.ServicePrincipal(site.PrincipalID); ok {
		t.Error("the principal still exists after the identity was turned off")
	}
	reply := callApp(t, f.svc, "mi-off")
	if _, ok := reply.Env["IDENTITY_HEADER"]; ok {
		t.Error("the app still gets IDENTITY_HEADER")
	}
	// On again: a new principal, not the old one back.
	spec.SystemAssignedIdentity = true
	if again, err := f.svc.UpdateSite(spec); err != nil || again.PrincipalID == "" || again.PrincipalID == site.PrincipalID {
		t.Errorf("turned on again: principal %q (was %q), err %v", again.PrincipalID, site.PrincipalID, err)
	}
}

func TestPullingWithManagedIdentityNeedsAcrPull(t *testing.T) {
	f := newFixture(t)
	site := f.createSite(t, SiteSpec{Name: "acr-app", Image: testImage, SystemAssignedIdentity: true, ACRUseManagedIdentityCreds: true})
	if !strings.Contains(site.LastError, "unauthorized") {
		t.Fatalf("LastError = %q, want an unauthorized pull", site.LastError)
	}
	if logs := f.svc.Logs("acr-app"); !strings.Contains(logs, "ERROR - Pull image failed: unauthorized") {
		t.Errorf("the app's log lacks the failed pull:\n%s", logs)
	}
	w := request(t, f.svc, "acr-app.azurewebsites.net", "/")
	if body := w.Body.String(); w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "Application Error") ||
		!strings.Contains(body, "go run ./shared/cmd/azlocal webapp log tail --name acr-app --resource-group "+testGroup) {
		t.Errorf("%d %s", w.Code, body)
	}

	if _, err := f.dir.AssignRole(site.PrincipalID, "AcrPull", registryID(testRegistry)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Restart("acr-app"); err != nil {
		t.Fatal(err)
	}
	callApp(t, f.svc, "acr-app")
	if after, _ := f.svc.Site("acr-app"); after.LastError != "" {
		t.Errorf("LastError = %q after a good start", after.LastError)
	}
}

func TestImagesThatCannotBePulled(t *testing.T) {
	f := newFixture(t)
	for name, tc := range map[string]struct{ image, want string }{
		"never-built":    {testRegistry + ".azurecr.io/app:nope", "manifest unknown"},
		"other-registry": {"mcr.microsoft.com/appsvc/staticsite:latest", "only from its own registries"},
		"no-registry":    {"nosuchreg.azurecr.io/app:v1", "no such host"},
	} {
		site := f.createSite(t, SiteSpec{Name: name, Image: tc.image})
		if !strings.Contains(site.LastError, tc.want) {
			t.Errorf("%s: LastError = %q, want %q", tc.image, site.LastError, tc.want)
		}
		if w := request(t, f.svc, name+".azurewebsites.net", "/"); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d", tc.image, w.Code)
		}
	}
}

func TestAppThatExitsShowsApplicationError(t *testing.T) {
	f := newFixture(t)
	site := f.createSite(t, SiteSpec{Name: "crash", Image: testImage, AppSettings: map[string]string{"CRASH_WITH": "AZURE_KEYVAULT_URL is not set"}})
	if site.State != StateRunning || !strings.Contains(site.LastError, "exited before listening") {
		t.Errorf("site = %+v", site)
	}
	if logs := f.svc.Logs("crash"); !strings.Contains(logs, "AZURE_KEYVAULT_URL is not set") || !strings.Contains(logs, "exit status 3") {
		t.Errorf("the app's log lacks its own last words:\n%s", logs)
	}
	if w := request(t, f.svc, "crash.azurewebsites.net", "/"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	// Fixing the setting restarts the app, which then serves.
	spec := site.SiteSpec
	spec.AppSettings = nil
	if _, err := f.svc.UpdateSite(spec); err != nil {
		t.Fatal(err)
	}
	callApp(t, f.svc, "crash")
}

func TestPlatformPagesForAppsThatDoNotServe(t *testing.T) {
	f := newFixture(t)
	f.createSite(t, SiteSpec{Name: "empty"})
	f.createSite(t, SiteSpec{Name: "stopped", Image: testImage})
	pid := callApp(t, f.svc, "stopped").PID
	if err := f.svc.Stop("stopped"); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Error("Stop left the process running")
	}
	for _, tc := range []struct {
		host string
		code int
		want string
	}{
		{"nosuchapp.azurewebsites.net", http.StatusNotFound, "This web app does not exist"},
		{"a.b.azurewebsites.net", http.StatusNotFound, "Web app not found"},
		{"stopped.azurewebsites.net:443", http.StatusForbidden, "This web app is stopped"},
		{"empty.azurewebsites.net", http.StatusOK, "waiting for your content"},
	} {
		w := request(t, f.svc, tc.host, "/")
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", tc.host, w.Code, w.Body)
		}
	}
	if err := f.svc.Start("stopped"); err != nil {
		t.Fatal(err)
	}
	callApp(t, f.svc, "stopped")
}

func TestDeleteSiteStopsItsProcessAndDeletesItsPrincipal(t *testing.T) {
	f := newFixture(t)
	site := f.createSite(t, SiteSpec{Name: "doomed", Image: testImage, SystemAssignedIdentity: true})
	pid := callApp(t, f.svc, "doomed").PID
	if err := f.svc.DeleteSite("doomed"); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Error("the deleted app's process still runs")
	}
	if _, ok := f.dir.ServicePrincipal(site.PrincipalID); ok {
		t.Error("the deleted app's principal still exists")
	}
	if _, ok := f.svc.Site("doomed"); ok {
		t.Error("Site still finds the deleted app")
	}
	if w := request(t, f.svc, "doomed.azurewebsites.net", "/"); w.Code != http.StatusNotFound {
		t.Errorf("%d", w.Code)
	}
	if err := f.svc.DeleteSite("doomed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
}

func TestNamesAndReferencesAreChecked(t *testing.T) {
	f := newFixture(t)
	f.createSite(t, SiteSpec{Name: "taken"})
	if _, err := f.svc.CreateSite(SiteSpec{Name: "TAKEN", ResourceID: siteID("other") + "x", PlanID: planID()}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("a taken name: %v, want ErrAlreadyExists", err)
	}
	if _, err := f.svc.CreateSite(SiteSpec{Name: "noplan", ResourceID: siteID("noplan"), PlanID: planID() + "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown plan: %v, want ErrNotFound", err)
	}
	for _, bad := range []SiteSpec{
		{Name: "-bad", ResourceID: siteID("-bad"), PlanID: planID()},
		{Name: "ok", ResourceID: "not-an-id", PlanID: planID()},
		{Name: "ok", ResourceID: siteID("ok"), PlanID: planID(), Image: "DOCKER|" + testImage},
		{Name: "ok", ResourceID: siteID("ok"), PlanID: planID(), AppSettings: map[string]string{"A=B": "x"}},
	} {
		if _, err := f.svc.CreateSite(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", bad, err)
		}
	}
	if err := f.svc.DeletePlan("plan"); !errors.Is(err, ErrConflict) {
		t.Errorf("deleting a plan with an app: %v, want ErrConflict", err)
	}
	if _, err := f.svc.CreateRegistry(testRegistry, registryID("elsewhere")); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("a taken registry name: %v, want ErrAlreadyExists", err)
	}
	if reg, err := f.svc.CreateRegistry(testRegistry, registryID(testRegistry)); err != nil || reg.LoginServer != "testreg.azurecr.io" {
		t.Errorf("creating the same registry again: %+v, %v", reg, err)
	}
}

func TestRunningAppsComeBackWithTheLocalCloud(t *testing.T) {
	work := t.TempDir()
	statePath := filepath.Join(t.TempDir(), "appservice.json")
	f := newFixture(t, func(o *Options) { o.WorkDir, o.Store = work, store.Open(statePath) })
	f.createSite(t, SiteSpec{Name: "survivor", Image: testImage, SystemAssignedIdentity: true})
	f.createSite(t, SiteSpec{Name: "sleeper", Image: testImage})
	if err := f.svc.Stop("sleeper"); err != nil {
		t.Fatal(err)
	}
	before := callApp(t, f.svc, "survivor")
	if err := f.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if !processGone(before.PID) {
		t.Fatal("Close left the app running")
	}

	again := f.open(t, Options{Directory: f.dir, Identity: f.svc.identity, TenantID: testTenant, WorkDir: work, Store: store.Open(statePath)})
	after := callApp(t, again, "survivor")
	if after.PID == before.PID || after.Env["IDENTITY_HEADER"] == before.Env["IDENTITY_HEADER"] {
		t.Error("the app did not start anew")
	}
	if site, _ := again.Site("sleeper"); site.State != StateStopped {
		t.Errorf("a stopped app came back %s", site.State)
	}
	if reg, ok := again.Registry(testRegistry); !ok || reg.LoginServer != "testreg.azurecr.io" {
		t.Errorf("the registry did not come back: %+v", reg)
	}
	if _, ok := again.Plan("plan"); !ok {
		t.Error("the plan did not come back")
	}
}

func TestCloseStopsEveryApp(t *testing.T) {
	f := newFixture(t)
	var pids []int
	for _, name := range []string{"one", "two", "three"} {
		f.createSite(t, SiteSpec{Name: name, Image: testImage, SystemAssignedIdentity: true})
		pids = append(pids, callApp(t, f.svc, name).PID)
	}
	if err := f.svc.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("process %d survived Close", pid)
		}
	}
	if err := f.svc.Restart("one"); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after Close: %v, want ErrClosed", err)
	}
	if w := request(t, f.svc, "one.azurewebsites.net", "/"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d", w.Code)
	}
}

func TestConcurrentChangesAndRequestsKeepOneProcess(t *testing.T) {
	f := newFixture(t)
	spec := SiteSpec{Name: "busy", ResourceID: siteID("busy"), PlanID: planID(), Image: testImage, SystemAssignedIdentity: true}
	f.createSite(t, spec)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 3 {
				switch (i + j) % 3 {
				case 0:
					if err := f.svc.Restart("busy"); err != nil {
						t.Error(err)
					}
				case 1:
					s := spec
					s.AppSettings = map[string]string{"N": strconv.Itoa(i*10 + j)}
					if _, err := f.svc.UpdateSite(s); err != nil {
						t.Error(err)
					}
				default:
					// During a restart the app may answer 503; it must never hang or race.
					request(t, f.svc, "busy.azurewebsites.net", "/")
					f.svc.Sites()
					f.svc.Logs("busy")
				}
			}
		})
	}
	wg.Wait()
	reply := callApp(t, f.svc, "busy")
	f.svc.mu.Lock()
	p := f.svc.sites["busy"].proc
	f.svc.mu.Unlock()
	if p == nil || p.cmd.Process.Pid != reply.PID {
		t.Errorf("the app that answers (pid %d) is not the one the platform tracks", reply.PID)
	}
	if started, stopped := strings.Count(f.logs.String(), "msg=\"site started\""), strings.Count(f.logs.String(), "msg=\"site stopped\""); started != stopped+1 {
		t.Errorf("%d starts but %d stops: a process was lost track of", started, stopped)
	}
}

func TestUploadedSourcesStayInsideTheWorkDir(t *testing.T) {
	f := newFixture(t)
	if err := f.svc.PutSource("source/abc.tar.gz", strings.NewReader("blob")); err != nil {
		t.Fatal(err)
	}
	rc, err := f.svc.OpenSource("source/abc.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "blob" {
		t.Errorf("read back %q", b)
	}
	for _, bad := range []string{"../x.tar.gz", "/etc/passwd", ""} {
		if err := f.svc.PutSource(bad, strings.NewReader("x")); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("PutSource(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	if _, err := f.svc.OpenSource("source/none.tar.gz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenSource of a missing blob: %v, want ErrNotFound", err)
	}
}

func TestAppThatNeverListensIsStoppedAtTheStartTimeLimit(t *testing.T) {
	f := newFixture(t)
	// One second is the shortest limit App Service accepts; the test waits that long.
	site := f.createSite(t, SiteSpec{Name: "mute", Image: testImage, AppSettings: map[string]string{
		"NEVER_LISTEN": "1", "WEBSITES_CONTAINER_START_TIME_LIMIT": "1",
	}})
	if !strings.Contains(site.LastError, "didn't respond to HTTP pings") {
		t.Errorf("LastError = %q", site.LastError)
	}
	logs := f.svc.Logs("mute")
	if !strings.Contains(logs, "busy with something else") || !strings.Contains(logs, "Container for site mute stopped") {
		t.Errorf("the log should show the app's output and that the platform stopped it:\n%s", logs)
	}
	f.svc.mu.Lock()
	p := f.svc.sites["mute"].proc
	f.svc.mu.Unlock()
	if p == nil || !p.isGone() {
		t.Error("the app that never listened is still running")
	}
}
