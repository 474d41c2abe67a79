package arm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
)

// webApp is a minimal App Service app and the Dockerfile that builds it, as 04-deploy's does.
var webApp = map[string]string{
	"go.mod": "module example.com/app\n\ngo 1.25\n",
	"main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	fmt.Println("app starting")
	_ = http.ListenAndServe(":"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from ", os.Getenv("WEBSITE_SITE_NAME"), " ", os.Getenv("GREETING"))
	}))
}
`,
	"deploy/Dockerfile": "FROM golang:1.25 AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /out/app .\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]\n",
}

func contextTarGz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"go.mod", "main.go", "deploy/Dockerfile"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// blob sends a request to the build blob host at a full URL.
func (e *env) blob(method, rawURL string, body []byte, header map[string]string) response {
	e.t.Helper()
	req := httptest.NewRequest(method, rawURL, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.arm.BlobHandler().ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func registryPath(group, name string) string {
	return groupPath(group) + "/providers/Microsoft.ContainerRegistry/registries/" + name
}
func planPath(group, name string) string {
	return groupPath(group) + "/providers/Microsoft.Web/serverfarms/" + name
}
func sitePath(group, name string) string {
	return groupPath(group) + "/providers/Microsoft.Web/sites/" + name
}

var planBodyB1 = map[string]any{"location": "westeurope", "kind": "linux", "sku": map[string]any{"name": "B1", "tier": "Basic"}, "properties": map[string]any{"reserved": true}}

func siteBodyFor(plan, image string, identity string, settings map[string]string) map[string]any {
	var appSettings []map[string]string
	for k, v := range settings {
		appSettings = append(appSettings, map[string]string{"name": k, "value": v})
	}
	config := map[string]any{"acrUseManagedIdentityCreds": true, "appSettings": appSettings}
	if image != "" {
		config["linuxFxVersion"] = "DOCKER|" + image
	}
	return map[string]any{
		"location": "westeurope", "kind": "app,linux,container", "identity": map[string]any{"type": identity},
		"properties": map[string]any{"serverFarmId": plan, "httpsOnly": true, "siteConfig": config},
	}
}

// get from the running web app, through the appservice front end.
func (e *env) visit(site string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "https://"+site+".azurewebsites.net/", nil)
	rec := httptest.NewRecorder()
	e.apps.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestDeployAWebAppThroughResourceManager(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg-web")
	reg := registryPath("rg-web", "localreg01")
	m := e.do(http.MethodPut, reg, map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Basic"}, "properties": map[string]any{"adminUserEnabled": false}}).expect(t, http.StatusCreated, "").json(t)
	if get(m, "properties", "loginServer") != "localreg01.azurecr.io" || get(m, "sku", "name") != "Basic" || m["type"] != "Microsoft.ContainerRegistry/registries" {
		t.Errorf("registry = %v", m)
	}
	e.do(http.MethodGet, reg, nil).expect(t, http.StatusOK, "")

	// az acr build: upload the context, schedule the run, read its log.
	up := e.do(http.MethodPost, reg+"/listBuildSourceUploadUrl", nil).expect(t, http.StatusOK, "").json(t)
	uploadURL, rel := up["uploadUrl"].(string), up["relativePath"].(string)
	if !strings.HasPrefix(uploadURL, "https://"+BlobHost+"/"+rel+"?") || !strings.HasPrefix(rel, "source/") || !strings.HasSuffix(rel, ".tar.gz") {
		t.Fatalf("upload URL %q, relative path %q", uploadURL, rel)
	}
	ctx := contextTarGz(t, webApp)
	e.blob(http.MethodPut, uploadURL, ctx, nil).expect(t, http.StatusBadRequest, "")
	e.blob(http.MethodPut, strings.Replace(uploadURL, "sig=", "sig=x", 1), ctx, map[string]string{"x-ms-blob-type": "BlockBlob"}).expect(t, http.StatusForbidden, "")
	r := e.blob(http.MethodPut, uploadURL, ctx, map[string]string{"x-ms-blob-type": "BlockBlob"}).expect(t, http.StatusCreated, "")
	if r.header.Get("Content-MD5") == "" || r.header.Get("ETag") == "" {
		t.Errorf("upload headers = %v", r.header)
	}
	run := e.do(http.MethodPost, reg+"/scheduleRun", map[string]any{
		"type": "DockerBuildRequest", "imageNames": []string{"app:v1"}, "isPushEnabled": true, "sourceLocation": rel,
		"dockerFilePath": "deploy/Dockerfile", "platform": map[string]any{"os": "Linux", "architecture": "amd64"},
	}).expect(t, http.StatusOK, "").json(t)
	runID, _ := get(run, "properties", "runId").(string)
	if get(run, "properties", "status") != "Succeeded" || run["name"] != runID || run["id"] != reg+"/runs/"+runID {
		t.Fatalf("run = %v", run)
	}
	img := get(run, "properties", "outputImages").([]any)[0].(map[string]any)
	if img["registry"] != "localreg01.azurecr.io" || img["repository"] != "app" || img["tag"] != "v1" {
		t.Errorf("output image = %v", img)
	}
	e.do(http.MethodGet, reg+"/runs/"+runID, nil).expect(t, http.StatusOK, "")
	e.do(http.MethodGet, reg+"/runs/nope", nil).expect(t, http.StatusNotFound, "ResourceNotFound")
	logLink := e.do(http.MethodPost, reg+"/runs/"+runID+"/listLogSasUrl", nil).expect(t, http.StatusOK, "").json(t)["logLink"].(string)
	logResp := e.blob(http.MethodGet, logLink, nil, nil).expect(t, http.StatusOK, "")
	if len(logResp.body) == 0 || logResp.header.Get("x-ms-meta-Complete") == "" {
		t.Errorf("log = %q, headers %v", logResp.body, logResp.header)
	}
	if r := e.blob(http.MethodGet, logLink, nil, map[string]string{"Range": "bytes=0-3"}); r.status != http.StatusPartialContent || len(r.body) != 4 {
		t.Errorf("ranged log read = %d, %d bytes", r.status, len(r.body))
	}
	u, _ := url.Parse(logLink)
	e.blob(http.MethodGet, "https://"+BlobHost+u.Path, nil, nil).expect(t, http.StatusForbidden, "")

	// az appservice plan create, az webapp create with a system-assigned identity.
	plan := planPath("rg-web", "plan-web")
	m = e.do(http.MethodPut, plan, planBodyB1).expect(t, http.StatusCreated, "").json(t)
	if m["kind"] != "linux" || get(m, "sku", "tier") != "Basic" || get(m, "properties", "reserved") != true {
		t.Errorf("plan = %v", m)
	}
	site := sitePath("rg-web", "web-demo")
	m = e.do(http.MethodPut, site, siteBodyFor(plan, "localreg01.azurecr.io/app:v1", "SystemAssigned", map[string]string{"GREETING": "hi"})).expect(t, http.StatusCreated, "").json(t)
	principal, _ := get(m, "identity", "principalId").(string)
	if principal == "" || get(m, "identity", "tenantId") != testTenant || get(m, "properties", "defaultHostName") != "web-demo.azurewebsites.net" ||
		get(m, "properties", "siteConfig", "linuxFxVersion") != "DOCKER|localreg01.azurecr.io/app:v1" || get(m, "properties", "state") != "Running" {
		t.Fatalf("site = %v", m)
	}
	// Without AcrPull its identity cannot pull the image: the app does not serve.
	if code, _ := e.visit("web-demo"); code == http.StatusOK {
		t.Fatal("the app serves although its identity may not pull its image")
	}
	acrPull := e.do(http.MethodGet, reg+"/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter="+url.QueryEscape("roleName eq 'AcrPull'"), nil)
	roleID := values(t, acrPull)[0]["id"].(string)
	e.do(http.MethodPut, assignmentPath(reg, "acc00000-0000-4000-a000-000000000001"), map[string]any{"properties": map[string]any{
		"roleDefinitionId": roleID, "principalId": principal, "principalType": "ServicePrincipal"}}).expect(t, http.StatusCreated, "")
	e.do(http.MethodPost, site+"/restart", nil).expect(t, http.StatusOK, "")
	waitServing(t, e, "web-demo", "hello from web-demo hi")

	settings := e.do(http.MethodPost, site+"/config/appsettings/list", nil).expect(t, http.StatusOK, "").json(t)
	if get(settings, "properties", "GREETING") != "hi" || settings["name"] != "appsettings" {
		t.Errorf("app settings = %v", settings)
	}
	e.do(http.MethodPut, site+"/config/appsettings", map[string]any{"properties": map[string]string{"GREETING": "bonjour"}}).expect(t, http.StatusOK, "")
	waitServing(t, e, "web-demo", "hello from web-demo bonjour")
	web := e.do(http.MethodGet, site+"/config/web", nil).expect(t, http.StatusOK, "").json(t)
	if get(web, "properties", "acrUseManagedIdentityCreds") != true {
		t.Errorf("config/web = %v", web)
	}
	r = e.do(http.MethodPost, site+"/containerlogs", nil).expect(t, http.StatusOK, "")
	if !strings.Contains(string(r.body), "app starting") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("container logs = %q", r.body)
	}

	// Turning the identity off deletes its principal; on again makes a new one.
	e.do(http.MethodPatch, site, map[string]any{"identity": map[string]any{"type": "None"}}).expect(t, http.StatusOK, "")
	if _, ok := e.dir.ServicePrincipal(principal); ok {
		t.Error("the identity's principal outlived identity type None")
	}
	m = e.do(http.MethodPatch, site, map[string]any{"identity": map[string]any{"type": "SystemAssigned"}}).expect(t, http.StatusOK, "").json(t)
	newPrincipal, _ := get(m, "identity", "principalId").(string)
	if newPrincipal == "" || newPrincipal == principal {
		t.Errorf("new principal = %q (old %q)", newPrincipal, principal)
	}
	e.do(http.MethodDelete, plan, nil).expect(t, http.StatusConflict, "Conflict")

	// Deleting the group stops the app and deletes everything, its principal and grants included.
	e.do(http.MethodDelete, groupPath("rg-web"), nil).expect(t, http.StatusOK, "")
	if _, ok := e.apps.Site("web-demo"); ok {
		t.Error("the site survived its group")
	}
	if code, _ := e.visit("web-demo"); code != http.StatusNotFound {
		t.Errorf("the deleted app answers %d", code)
	}
	if _, ok := e.dir.ServicePrincipal(newPrincipal); ok {
		t.Error("the site's principal survived its group")
	}
	if _, ok := e.apps.Registry("localreg01"); ok {
		t.Error("the registry survived its group")
	}
	if _, ok := e.apps.Plan("plan-web"); ok {
		t.Error("the plan survived its group")
	}
	if got := e.dir.RoleAssignments(directory.RoleAssignmentFilter{UnderScope: groupPath("rg-web")}); len(got) != 0 {
		t.Errorf("assignments left under the group: %+v", got)
	}
}

func waitServing(t *testing.T, e *env, site, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := e.visit(site)
		if code == http.StatusOK && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answers %d %q, want %q; logs:\n%s", site, code, body, want, e.apps.Logs(site))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWebAndRegistryRefusals(t *testing.T) {
	e := newEnv(t)
	e.createGroup("rg")
	e.createGroup("rg2")
	regBody := map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Basic"}}
	e.do(http.MethodPut, registryPath("rg", "bad-name"), regBody).expect(t, http.StatusBadRequest, "InvalidResourceName")
	e.do(http.MethodPut, registryPath("rg", "regone"), map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Basic"},
		"properties": map[string]any{"adminUserEnabled": true}}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, registryPath("rg", "regone"), map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Gold"}}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, registryPath("rg", "regone"), regBody).expect(t, http.StatusCreated, "")
	e.do(http.MethodPut, registryPath("rg", "regone"), regBody).expect(t, http.StatusOK, "")
	e.do(http.MethodPut, registryPath("rg2", "regone"), regBody).expect(t, http.StatusConflict, "Conflict")
	e.do(http.MethodPost, registryPath("rg", "regone")+"/scheduleRun", map[string]any{"type": "DockerBuildRequest", "imageNames": []string{"a:b"},
		"sourceLocation": "source/none.tar.gz", "dockerFilePath": "Dockerfile"}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPost, registryPath("rg", "regone")+"/scheduleRun", map[string]any{"type": "EncodedTaskRunRequest"}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPost, registryPath("rg", "regnone")+"/listBuildSourceUploadUrl", nil).expect(t, http.StatusNotFound, "ResourceNotFound")
	e.do(http.MethodGet, registryPath("rg", "regone")+"/webhooks", nil).expect(t, http.StatusNotFound, "InvalidRequestUri")

	noLinux := map[string]any{"location": "westeurope", "sku": map[string]any{"name": "B1"}}
	e.do(http.MethodPut, planPath("rg", "plan"), noLinux).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, planPath("rg", "plan"), map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Z9"}, "properties": map[string]any{"reserved": true}}).expect(t, http.StatusBadRequest, "BadRequest")
	plan := planPath("rg", "plan")
	e.do(http.MethodPut, plan, planBodyB1).expect(t, http.StatusCreated, "")
	e.do(http.MethodPut, planPath("rg2", "plan"), planBodyB1).expect(t, http.StatusConflict, "Conflict")

	e.do(http.MethodPut, sitePath("rg", "site-a"), siteBodyFor(planPath("rg", "noplan"), "regone.azurecr.io/app:v1", "None", nil)).expect(t, http.StatusNotFound, "NotFound")
	python := siteBodyFor(plan, "x", "None", nil)
	python["properties"].(map[string]any)["siteConfig"].(map[string]any)["linuxFxVersion"] = "PYTHON|3.11"
	e.do(http.MethodPut, sitePath("rg", "site-a"), python).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, sitePath("rg", "site-a"), siteBodyFor(plan, "regone.azurecr.io/app:v1", "UserAssigned", nil)).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPut, sitePath("rg", "site-a"), map[string]any{"location": "westeurope"}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPatch, sitePath("rg", "site-a"), map[string]any{}).expect(t, http.StatusNotFound, "ResourceNotFound")
	// A site whose image was never built is created, and does not serve.
	m := e.do(http.MethodPut, sitePath("rg", "site-a"), siteBodyFor(plan, "regone.azurecr.io/app:v1", "None", nil)).expect(t, http.StatusCreated, "").json(t)
	if get(m, "identity", "type") != "None" {
		t.Errorf("identity = %v", m["identity"])
	}
	e.do(http.MethodPut, sitePath("rg2", "site-a"), siteBodyFor(planPath("rg2", "plan"), "", "None", nil)).expect(t, http.StatusConflict, "Conflict")
	e.do(http.MethodGet, sitePath("rg", "site-a")+"/config/appsettings/list", nil).expect(t, http.StatusMethodNotAllowed, "MethodNotAllowed")
	e.do(http.MethodPut, sitePath("rg", "site-a")+"/config/web", map[string]any{}).expect(t, http.StatusBadRequest, "BadRequest")
	e.do(http.MethodPost, sitePath("rg", "site-b")+"/restart", nil).expect(t, http.StatusNotFound, "ResourceNotFound")
	e.do(http.MethodDelete, sitePath("rg", "site-a"), nil).expect(t, http.StatusOK, "")
	e.do(http.MethodDelete, sitePath("rg", "site-a"), nil).expect(t, http.StatusNoContent, "")
	e.do(http.MethodDelete, plan, nil).expect(t, http.StatusOK, "")

	e.blob(http.MethodGet, "https://"+BlobHost+"/other/x", nil, nil).expect(t, http.StatusNotFound, "")
	e.blob(http.MethodDelete, "https://"+BlobHost+"/source/x", nil, nil).expect(t, http.StatusMethodNotAllowed, "")
}
