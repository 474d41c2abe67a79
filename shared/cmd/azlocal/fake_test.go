package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// fakeCall is one request a fake service saw.
type fakeCall struct {
	method, path string
	header       http.Header
	body         []byte
}

// route answers the requests with a method whose path contains a fragment.
type route struct {
	method, fragment string
	answer           func(w http.ResponseWriter, body []byte)
}

// fakeAzure answers some paths itself (the first matching route) and sends every other request
// to the real service, or 404: it pins down how azlocal maps a command onto the contract's REST
// calls and answers.
type fakeAzure struct {
	mu     sync.Mutex
	calls  []fakeCall
	routes []route
	next   http.Handler
}

func (f *fakeAzure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	for _, rt := range f.routes {
		if r.Method == rt.method && strings.Contains(strings.ToLower(r.URL.Path), strings.ToLower(rt.fragment)) {
			f.mu.Lock()
			f.calls = append(f.calls, fakeCall{r.Method, r.URL.Path, r.Header.Clone(), body})
			f.mu.Unlock()
			rt.answer(w, body)
			return
		}
	}
	if f.next == nil {
		http.Error(w, `{"error":{"code":"NotFound","message":"fake: no route"}}`, http.StatusNotFound)
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	f.next.ServeHTTP(w, r)
}

func (f *fakeAzure) find(t *testing.T, method, fragment string) fakeCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.method == method && strings.Contains(strings.ToLower(c.path), strings.ToLower(fragment)) {
			return c
		}
	}
	t.Fatalf("no %s ...%s... among %d calls", method, fragment, len(f.calls))
	return fakeCall{}
}

func answer(status int, v any) func(http.ResponseWriter, []byte) {
	return func(w http.ResponseWriter, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
}

// startCloud starts a local cloud in a folder and returns azlocal's environment for it.
func startCloud(t *testing.T) (*localcloud.Cloud, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".localcloud")
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	return cloud, map[string]string{"LOCALCLOUD_DIR": dir}
}

func TestACRBuildMapsOntoTheRegistryAPIs(t *testing.T) {
	cloud, env := startCloud(t)
	sub := "/subscriptions/" + localcloud.SubscriptionID
	reg := sub + "/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1"
	for _, status := range []string{"Succeeded", "Failed"} {
		t.Run(status, func(t *testing.T) {
			run := map[string]any{"id": reg + "/runs/ca1", "name": "ca1", "properties": map[string]any{"runId": "ca1", "status": status}}
			arm := &fakeAzure{routes: []route{
				{"GET", "/runs/ca1", answer(200, run)},
				{"GET", "/registries/reg1", answer(200, map[string]any{"id": reg, "name": "reg1", "properties": map[string]any{"loginServer": "reg1.azurecr.io"}})},
				{"POST", "/listBuildSourceUploadUrl", answer(200, map[string]any{
					"uploadUrl": "https://localcloudbuilds.blob.core.windows.net/source/x.tar.gz?sv=1&sig=secret", "relativePath": "source/x.tar.gz"})},
				{"POST", "/scheduleRun", answer(200, run)},
				{"POST", "/runs/ca1/listLogSasUrl", answer(200, map[string]any{"logLink": "https://localcloudbuilds.blob.core.windows.net/logs/ca1.txt?sig=s"})},
			}}
			blob := &fakeAzure{routes: []route{
				{"PUT", "/source/x.tar.gz", func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusCreated) }},
				{"GET", "/logs/ca1.txt", func(w http.ResponseWriter, _ []byte) {
					io.WriteString(w, "Step 1/2 : FROM golang\r\nRun ID: ca1 was "+status+"\r\n")
				}},
			}}
			cloud.Proxy.Handle("management.azure.com", arm)
			cloud.Proxy.Handle("localcloudbuilds.blob.core.windows.net", blob)

			src := t.TempDir()
			writeTree(t, src, map[string]string{"Dockerfile": "FROM golang", "main.go": "package main"})
			code, stdout, stderr := azlocal(t, env, "acr", "build", "--registry", "reg1", "--resource-group", "rg", "--image", "app:v1", "--image", "app:latest", src)

			put := blob.find(t, "PUT", "/source/x.tar.gz")
			if put.header.Get("x-ms-blob-type") != "BlockBlob" || put.header.Get("Authorization") != "" {
				t.Errorf("upload headers %v: want x-ms-blob-type BlockBlob and no bearer token (the SAS URL authorizes)", put.header)
			}
			files := tarFiles(t, put.body)
			if files["main.go"] != "package main" {
				t.Errorf("uploaded context holds %v", files)
			}
			var req map[string]any
			if err := json.Unmarshal(arm.find(t, "POST", "/scheduleRun").body, &req); err != nil {
				t.Fatal(err)
			}
			dockerfile, _ := req["dockerFilePath"].(string)
			if req["type"] != "DockerBuildRequest" || req["sourceLocation"] != "source/x.tar.gz" || req["isPushEnabled"] != true ||
				files[dockerfile] != "FROM golang" || !strings.HasSuffix(dockerfile, "_Dockerfile") {
				t.Errorf("scheduleRun body %v; the Dockerfile path must name the copy added to the context", req)
			}
			if images, _ := req["imageNames"].([]any); len(images) != 2 || images[0] != "app:v1" || images[1] != "app:latest" {
				t.Errorf("imageNames = %v", req["imageNames"])
			}
			if !strings.HasPrefix(stdout, "Step 1/2 : FROM golang\r\nRun ID: ca1 was "+status) {
				t.Errorf("stdout %q: want the run's log, as az streams it", stdout)
			}
			if !strings.Contains(stderr, "WARNING: Queued a build with ID: ca1") {
				t.Errorf("stderr %q", stderr)
			}
			if want := map[string]int{"Succeeded": 0, "Failed": 1}[status]; code != want {
				t.Errorf("exit %d for a %s run, want %d (stderr %q)", code, status, want, stderr)
			}
			if status == "Failed" && !strings.HasSuffix(stderr, "ERROR: Run failed\n") {
				t.Errorf("stderr %q: want az's 'Run failed'", stderr)
			}
		})
	}
}

func TestWebAppCreateMapsOntoTheSiteAPIs(t *testing.T) {
	cloud, env := startCloud(t)
	sub := "/subscriptions/" + localcloud.SubscriptionID
	site := sub + "/resourceGroups/rg/providers/Microsoft.Web/sites/app1"
	plan := sub + "/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan1"
	scope := sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
	siteJSON := map[string]any{"id": site, "name": "app1", "type": "Microsoft.Web/sites", "kind": "app,linux,container",
		"identity":   map[string]any{"type": "SystemAssigned", "principalId": "11111111-2222-3333-4444-555555555555", "tenantId": localcloud.TenantID},
		"properties": map[string]any{"defaultHostName": "app1.azurewebsites.net", "serverFarmId": plan, "state": "Running"}}
	roleID := sub + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"
	arm := &fakeAzure{routes: []route{
		{"GET", "/serverfarms/plan1", answer(200, map[string]any{"id": plan, "name": "plan1", "location": "westeurope", "properties": map[string]any{"reserved": true}})},
		{"PATCH", "/sites/app1/config/web", answer(200, map[string]any{"properties": map[string]any{"acrUseManagedIdentityCreds": true}})},
		{"PUT", "/sites/app1", answer(200, siteJSON)},
		{"PATCH", "/sites/app1", answer(200, siteJSON)},
		{"GET", "/sites/app1", answer(200, siteJSON)},
		{"GET", "/roleDefinitions", answer(200, map[string]any{"value": []any{map[string]any{"id": roleID, "properties": map[string]any{"roleName": "Key Vault Secrets User"}}}})},
		{"PUT", "/roleAssignments/", func(w http.ResponseWriter, body []byte) {
			var req map[string]any
			json.Unmarshal(body, &req)
			answer(201, map[string]any{"id": scope + "/providers/Microsoft.Authorization/roleAssignments/x", "properties": req["properties"]})(w, nil)
		}},
	}}
	cloud.Proxy.Handle("management.azure.com", arm)

	code, stdout, stderr := azlocal(t, env, "webapp", "create", "-n", "app1", "-g", "rg", "-p", "plan1",
		"--container-image-name", "reg1.azurecr.io/app:v1", "--assign-identity", "--role", "Key Vault Secrets User",
		"--scope", scope, "--acr-use-identity", "--https-only", "true", "--query", "{host:defaultHostName, id:identity.principalId}", "-o", "tsv")
	if code != 0 || stdout != "app1.azurewebsites.net\t11111111-2222-3333-4444-555555555555\n" {
		t.Fatalf("webapp create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var body map[string]any
	if err := json.Unmarshal(arm.find(t, "PUT", "/sites/app1").body, &body); err != nil {
		t.Fatal(err)
	}
	props, _ := body["properties"].(map[string]any)
	config, _ := props["siteConfig"].(map[string]any)
	if body["kind"] != "app,linux,container" || body["location"] != "westeurope" || props["serverFarmId"] != plan ||
		props["httpsOnly"] != true || config["linuxFxVersion"] != "DOCKER|reg1.azurecr.io/app:v1" {
		t.Errorf("site PUT body %v", body)
	}
	if !strings.Contains(string(arm.find(t, "PATCH", "/sites/app1").body), `"SystemAssigned"`) {
		t.Error("the identity was not turned on with a PATCH of identity.type SystemAssigned")
	}
	var ra map[string]map[string]any
	if err := json.Unmarshal(arm.find(t, "PUT", "/roleAssignments/").body, &ra); err != nil {
		t.Fatal(err)
	}
	if p := ra["properties"]; p["principalId"] != "11111111-2222-3333-4444-555555555555" || p["principalType"] != "ServicePrincipal" ||
		!strings.HasSuffix(p["roleDefinitionId"].(string), "/4633458b-17de-408a-b874-0445c86b69e6") {
		t.Errorf("role assignment body %v", ra)
	}
	if !strings.Contains(string(arm.find(t, "PATCH", "/config/web").body), `"acrUseManagedIdentityCreds":true`) {
		t.Error("--acr-use-identity did not set acrUseManagedIdentityCreds")
	}
}
