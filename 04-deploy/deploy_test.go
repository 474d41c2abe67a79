package deploy

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/localcloudtest"
)

const (
	keyVaultSecretsUserID = "4633458b-17de-408a-b874-0445c86b69e6"
	acrPullID             = "7f951dca-4ed3-4a0c-a1b1-0acc8db0b7b0"
	defaultSecretValue    = "reindeer_flotilla"
)

// Both ways to deploy (Bicep and the az script) must give the app the same access and the same
// configuration: Key Vault Secrets User at vault scope and AcrPull at registry scope, both for
// the web app's own system-assigned identity, the vault's URL as AZURE_KEYVAULT_URL, and image
// pulls with that identity instead of a registry password. The script enables the identity
// with exactly one `az webapp identity assign` (C14).
func TestBicepAndScriptGrantTheSameRoleIdentityAndSetting(t *testing.T) {
	t.Parallel()

	// Bicep.
	src := readFile(t, "infra/main.bicep")
	rs, vars := bicepResources(t, src), bicepVars(src)
	vault := only(t, rs, "Microsoft.KeyVault/vaults")
	registry := only(t, rs, "Microsoft.ContainerRegistry/registries")
	site := only(t, rs, "Microsoft.Web/sites")
	if !regexp.MustCompile(`enableRbacAuthorization: true`).MatchString(vault.Body) {
		t.Error("the vault does not use Azure RBAC (enableRbacAuthorization: true)")
	}
	if strings.Contains(vault.Body, "accessPolicies") {
		t.Error("the vault has access policies; this step uses Azure RBAC only")
	}
	if !regexp.MustCompile(`identity: \{\s*type: 'SystemAssigned'\s*\}`).MatchString(site.Body) {
		t.Error("the web app has no system-assigned identity (identity: { type: 'SystemAssigned' })")
	}
	if !strings.Contains(site.Body, "acrUseManagedIdentityCreds: true") {
		t.Error("the web app does not pull its image with its managed identity (acrUseManagedIdentityCreds: true)")
	}
	if want := "linuxFxVersion: 'DOCKER|${" + registry.Symbol + ".properties.loginServer}/${imageName}'"; !strings.Contains(site.Body, want) {
		t.Errorf("the web app does not run the registry's image; want %s", want)
	}
	bicepSettings := bicepAppSettings(site.Body)
	if got, want := bicepSettings["AZURE_KEYVAULT_URL"], vault.Symbol+".properties.vaultUri"; got != want {
		t.Errorf("Bicep sets AZURE_KEYVAULT_URL to %q, want %q", got, want)
	}

	grants := map[string]bicepResource{} // role ID -> assignment
	for _, r := range rs {
		if r.Type != "Microsoft.Authorization/roleAssignments" {
			continue
		}
		m := regexp.MustCompile(`roleDefinitionId: subscriptionResourceId\('Microsoft.Authorization/roleDefinitions', (\w+)\)`).FindStringSubmatch(r.Body)
		if m == nil || vars[m[1]] == "" {
			t.Errorf("role assignment %s does not name a built-in role by a variable holding its ID", r.Symbol)
			continue
		}
		grants[vars[m[1]]] = r
		if want := "principalId: " + site.Symbol + ".identity.principalId"; !strings.Contains(r.Body, want) {
			t.Errorf("role assignment %s is not for the web app's system-assigned identity (%s)", r.Symbol, want)
		}
		if !strings.Contains(r.Body, "principalType: 'ServicePrincipal'") {
			t.Errorf("role assignment %s does not say principalType: 'ServicePrincipal'", r.Symbol)
		}
		if !regexp.MustCompile(`name: guid\(`).MatchString(r.Body) {
			t.Errorf("role assignment %s is not named with guid(...), so a redeployment would not find it again", r.Symbol)
		}
	}
	for role, scope := range map[string]string{keyVaultSecretsUserID: vault.Symbol, acrPullID: registry.Symbol} {
		r, ok := grants[role]
		if !ok {
			t.Errorf("Bicep does not assign role %s", role)
			continue
		}
		if !regexp.MustCompile(`(?m)^\s*scope: ` + scope + `\s*$`).MatchString(r.Body) {
			t.Errorf("role %s is not assigned at the scope of %s", role, scope)
		}
	}

	// The script.
	calls := scriptAzCalls(readFile(t, "deploy.sh"))
	assigns := callsOf(calls, "webapp identity assign")
	if len(assigns) != 1 {
		t.Fatalf("deploy.sh has %d `az webapp identity assign` calls, want exactly one", len(assigns))
	}
	assign := assigns[0].Args
	if got := flagValue(assign, "--role"); got != "Key Vault Secrets User" {
		t.Errorf("az webapp identity assign --role %q, want \"Key Vault Secrets User\"", got)
	}
	if ids := flagValues(assign, "--identities"); len(ids) > 0 && !slices.Equal(ids, []string{"[system]"}) {
		t.Errorf("az webapp identity assign --identities %v: the step uses the system-assigned identity", ids)
	}
	if scope := producer(t, calls, flagValue(assign, "--scope")).Args; command(scope) != "keyvault show" || flagValue(scope, "--query") != "id" {
		t.Errorf("az webapp identity assign --scope is not the vault's resource ID: it comes from az %s", strings.Join(scope, " "))
	}
	if assigns[0].Var == "" {
		t.Fatal("deploy.sh does not keep the identity's principalId from az webapp identity assign")
	}

	var acrPull []string
	for _, c := range callsOf(calls, "role assignment create") {
		if flagValue(c.Args, "--role") == "AcrPull" {
			acrPull = c.Args
		}
	}
	if acrPull == nil {
		t.Fatal("deploy.sh does not assign AcrPull")
	}
	if got, want := flagValue(acrPull, "--assignee-object-id"), "$"+assigns[0].Var; got != want {
		t.Errorf("AcrPull goes to %s, want the web app's identity %s", got, want)
	}
	if got := flagValue(acrPull, "--assignee-principal-type"); got != "ServicePrincipal" {
		t.Errorf("AcrPull --assignee-principal-type %q, want ServicePrincipal", got)
	}
	if scope := producer(t, calls, flagValue(acrPull, "--scope")).Args; command(scope) != "acr show" || flagValue(scope, "--query") != "id" {
		t.Errorf("AcrPull --scope is not the registry's resource ID: it comes from az %s", strings.Join(scope, " "))
	}

	configSets := callsOf(calls, "webapp config set")
	if len(configSets) != 1 {
		t.Fatalf("deploy.sh has %d `az webapp config set` calls, want 1", len(configSets))
	}
	var generic map[string]any
	if err := json.Unmarshal([]byte(flagValue(configSets[0].Args, "--generic-configurations")), &generic); err != nil || generic["acrUseManagedIdentityCreds"] != true {
		t.Errorf("az webapp config set does not set acrUseManagedIdentityCreds to true: %v %v", generic, err)
	}

	settingsCalls := callsOf(calls, "webapp config appsettings set")
	if len(settingsCalls) != 1 {
		t.Fatalf("deploy.sh has %d `az webapp config appsettings set` calls, want 1", len(settingsCalls))
	}
	scriptSettings := map[string]string{}
	for _, kv := range flagValues(settingsCalls[0].Args, "--settings") {
		k, v, _ := strings.Cut(kv, "=")
		scriptSettings[k] = v
	}
	if url := producer(t, calls, scriptSettings["AZURE_KEYVAULT_URL"]).Args; command(url) != "keyvault show" || flagValue(url, "--query") != "properties.vaultUri" {
		t.Errorf("the script's AZURE_KEYVAULT_URL is not the vault's URI: it comes from az %s", strings.Join(url, " "))
	}
	// Every other setting is a literal, the same in both.
	for name, v := range bicepSettings {
		if name == "AZURE_KEYVAULT_URL" {
			continue
		}
		if got, want := scriptSettings[name], strings.Trim(v, "'"); got != want {
			t.Errorf("app setting %s: the script sets %q, Bicep %q", name, got, want)
		}
	}
	if len(scriptSettings) != len(bicepSettings) {
		t.Errorf("the script sets app settings %v, Bicep %v", scriptSettings, bicepSettings)
	}
}

// The Bicep file uses documented, stable API versions, and the secret's value is in no file:
// it is a @secure() parameter that az or azd asks for.
func TestBicepUsesStableAPIVersionsAndKeepsTheSecretOutOfFiles(t *testing.T) {
	t.Parallel()
	src := readFile(t, "infra/main.bicep")
	want := map[string]string{
		"Microsoft.KeyVault/vaults":               "2023-07-01",
		"Microsoft.KeyVault/vaults/secrets":       "2023-07-01",
		"Microsoft.ContainerRegistry/registries":  "2023-07-01",
		"Microsoft.Web/serverfarms":               "2024-04-01",
		"Microsoft.Web/sites":                     "2024-04-01",
		"Microsoft.Authorization/roleAssignments": "2022-04-01",
	}
	seen := map[string]bool{}
	for _, r := range bicepResources(t, src) {
		v, ok := want[r.Type]
		if !ok {
			t.Errorf("resource %s has type %s, which this test does not know", r.Symbol, r.Type)
			continue
		}
		seen[r.Type] = true
		if r.APIVersion != v {
			t.Errorf("%s uses %s@%s, want the stable %s", r.Symbol, r.Type, r.APIVersion, v)
		}
	}
	for typ := range want {
		if !seen[typ] {
			t.Errorf("main.bicep declares no %s", typ)
		}
	}

	if !regexp.MustCompile(`@secure\(\)\s*param secretValue string\s*\n`).MatchString(src) {
		t.Error("secretValue is not a @secure() string parameter without a default")
	}
	secret := only(t, bicepResources(t, src), "Microsoft.KeyVault/vaults/secrets")
	if !strings.Contains(secret.Body, "value: secretValue") || !strings.Contains(secret.Body, "name: 'SecretPassword'") {
		t.Errorf("the secret resource does not store secretValue as SecretPassword:\n%s", secret.Body)
	}
	var params struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "infra/main.parameters.json")), &params); err != nil {
		t.Fatal(err)
	}
	if _, ok := params.Parameters["secretValue"]; ok {
		t.Error("main.parameters.json sets secretValue: the secret must not be in a file")
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == ".azure" {
			return filepath.SkipDir // azd's own record of what it was told, git-ignored
		}
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md") {
			return err
		}
		if strings.Contains(readFile(t, path), defaultSecretValue) && filepath.Base(path) != "deploy.sh" {
			t.Errorf("%s holds the secret's value", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The image is built in two stages: Go in golang:1.25, then only the static binary on
// distroless, as a non-root user. Exactly one RUN line builds the app (the local registry runs
// that line, since no container engine exists here).
func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	t.Parallel()
	src := readFile(t, "Dockerfile")
	var from, builds []string
	for _, line := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(line, "FROM "):
			from = append(from, line)
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			builds = append(builds, line)
		}
	}
	if len(from) != 2 || !strings.HasPrefix(from[0], "FROM golang:1.25 ") || from[1] != "FROM gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("stages %q, want golang:1.25 then gcr.io/distroless/static-debian12:nonroot", from)
	}
	if want := `RUN CGO_ENABLED=0 go build -tags nolocalcloud -trimpath -ldflags="-s -w" -o /out/app ./03-managed-identity`; len(builds) != 1 || builds[0] != want {
		t.Errorf("go build RUN lines %q, want exactly %q", builds, want)
	}
	for _, want := range []string{"COPY --from=build /out/app /app", "EXPOSE 8080", `ENTRYPOINT ["/app"]`} {
		if !strings.Contains(src, "\n"+want+"\n") {
			t.Errorf("the Dockerfile has no line %s", want)
		}
	}
	if strings.Contains(src, "\nUSER root") {
		t.Error("the image runs as root")
	}
}

// Both scripts are strict bash, call az only through $AZ (so AZ=azlocal rehearses the very same
// commands), explain themselves with --help, and pass shellcheck.
func TestScriptsAreStrict(t *testing.T) {
	t.Parallel()
	bareAz := regexp.MustCompile(`(^|[;&|(!{]|\$\(|\bthen\b|\bdo\b|\belse\b|\btime\b|\bexec\b|\bcommand\b)\s*az\s`)
	for _, script := range []string{"deploy.sh", "cleanup.sh"} {
		src := readFile(t, script)
		lines := strings.Split(src, "\n")
		if lines[0] != "#!/usr/bin/env bash" && lines[0] != "#!/bin/bash" {
			t.Errorf("%s starts with %q, want a bash shebang", script, lines[0])
		}
		if first := scriptLines(src); len(first) == 0 || first[0].Text != "set -euo pipefail" {
			t.Errorf("%s: the first command is not `set -euo pipefail`", script)
		}
		if !strings.Contains(src, "\nAZ=${AZ:-az}\n") {
			t.Errorf("%s does not default AZ to az (AZ=${AZ:-az})", script)
		}
		for _, l := range scriptLines(src) {
			if bareAz.MatchString(l.Text) {
				t.Errorf("%s:%d runs az directly instead of \"$AZ\": %s", script, l.N, strings.TrimSpace(l.Text))
			}
		}
		if len(scriptAzCalls(src)) == 0 {
			t.Errorf("%s never calls \"$AZ\"", script)
		}
		out, err := exec.Command("bash", script, "--help").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "Usage: 04-deploy/"+script) {
			t.Errorf("bash %s --help: %v\n%s", script, err, out)
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck is not on PATH; skipping that part")
		return
	}
	if out, err := exec.Command("shellcheck", "deploy.sh", "cleanup.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// fakeDeploy runs deploy.sh against the stand-in az, with the app played by an HTTPS server that
// serves the secret, and returns the calls az saw, the script's output and the app's URL.
type fakeRun struct {
	calls          [][]string
	stdout, stderr string
	appURL         string
	context        string // the build context the script uploaded
}

func fakeDeploy(t *testing.T, userType string, args ...string) fakeRun {
	t.Helper()
	const secret = "s3cr3t-value-that-must-not-leak"
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/SecretTest" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "Secret value: %s\n", secret)
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: app.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log, uploaded := filepath.Join(dir, "az.log"), filepath.Join(dir, "context")
	env := append(localcloud.ScrubEnv(os.Environ()),
		"AZ="+self, fakeAzLogEnv+"="+log, "FAKE_AZ_USER_TYPE="+userType,
		"FAKE_AZ_HOST="+strings.TrimPrefix(app.URL, "https://"), "FAKE_AZ_CONTEXT_COPY="+uploaded,
		"SSL_CERT_FILE="+ca, "SECRET_VALUE="+secret, "DEPLOY_WAIT_SECONDS=30")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stdout, stderr, err := runScript(t, ctx, env, "deploy.sh", args...)
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s%s", err, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, secret) {
		t.Errorf("deploy.sh printed the secret's value:\n%s%s", stdout, stderr)
	}
	return fakeRun{calls: fakeAzCalls(t, log), stdout: stdout, stderr: stderr, appURL: app.URL, context: uploaded}
}

// deploy.sh runs the Learn module's steps in its order, for the RBAC model: group, vault, the
// caller's Key Vault Secrets Officer, secret, registry and image, plan, web app, settings, ONE
// identity assign, AcrPull, pulls with the identity, image, restart. It prints the app's URL as
// its last and only line of standard output, and never the secret.
func TestDeployRunsTheLearnModuleStepsInOrderAndPrintsTheURLLast(t *testing.T) {
	t.Parallel()
	run := fakeDeploy(t, "user", "--name-suffix", "abc123", "--location", "northeurope")

	if got := lastLine(run.stdout); got != run.appURL {
		t.Errorf("the last line is %q, want the app's URL %s", got, run.appURL)
	}
	if strings.TrimSpace(run.stdout) != run.appURL {
		t.Errorf("standard output holds more than the URL:\n%s", run.stdout)
	}
	want := []string{
		"group create", "keyvault create", "role assignment create Key Vault Secrets Officer",
		"keyvault secret set", "acr create", "acr build", "appservice plan create", "webapp create",
		"webapp config appsettings set", "webapp identity assign", "role assignment create AcrPull",
		"webapp config set", "webapp config container set", "webapp restart",
	}
	var got []string
	identityAssigns := 0
	for _, c := range run.calls {
		name := command(c)
		if name == "webapp identity assign" {
			identityAssigns++
		}
		if role := flagValue(c, "--role"); name == "role assignment create" {
			name += " " + role
		}
		if slices.Contains(want, name) {
			got = append(got, name)
		}
		if slices.Contains([]string{"group create", "keyvault create", "acr create", "appservice plan create"}, name) &&
			flagValue(c, "--location") != "northeurope" {
			t.Errorf("az %s is not in the chosen location: %v", name, c)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("deploy.sh ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if identityAssigns != 1 {
		t.Errorf("az webapp identity assign ran %d times, want once", identityAssigns)
	}
	for _, c := range run.calls {
		if flagValue(c, "--resource-group") != "" && flagValue(c, "--resource-group") != "rg-kvboot-abc123" {
			t.Errorf("az %v is not in the group the suffix names", c)
		}
		if command(c) == "webapp create" && flagValue(c, "--name") != "app-boot-abc123" {
			t.Errorf("the web app is not named from the suffix: %v", c)
		}
	}
}

// The caller's object ID comes from `az ad signed-in-user show` for a user and from
// `az ad sp show` for a service principal (as in CI), and the role assignment says which.
func TestDeployFindsTheCallerAsUserOrServicePrincipal(t *testing.T) {
	t.Parallel()
	for userType, want := range map[string][]string{
		"user":             {"ad signed-in-user show", "caller-user-object-id", "User"},
		"servicePrincipal": {"ad sp show", "caller-sp-object-id", "ServicePrincipal"},
	} {
		t.Run(userType, func(t *testing.T) {
			t.Parallel()
			run := fakeDeploy(t, userType)
			lookedUp := false
			for _, c := range run.calls {
				lookedUp = lookedUp || command(c) == want[0]
				if command(c) == "role assignment create" && flagValue(c, "--role") == "Key Vault Secrets Officer" {
					if flagValue(c, "--assignee-object-id") != want[1] || flagValue(c, "--assignee-principal-type") != want[2] {
						t.Errorf("Key Vault Secrets Officer went to %v, want %s %s", c, want[2], want[1])
					}
				}
			}
			if !lookedUp {
				t.Errorf("deploy.sh did not run az %s", want[0])
			}
		})
	}
}

// What deploy.sh uploads to the registry is enough to build the app with the Dockerfile's own
// go build line, and holds nothing else of the repository.
func TestImageBuildsFromTheContextDeployUploads(t *testing.T) {
	t.Parallel()
	run := fakeDeploy(t, "user")
	var files []string
	err := filepath.WalkDir(run.context, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(run.context, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !(f == "go.mod" || f == "go.sum" || f == "04-deploy/Dockerfile" ||
			strings.HasPrefix(f, "03-managed-identity/")) {
			t.Errorf("the build context holds %s, which the Dockerfile does not copy", f)
		}
	}

	var build string
	for _, line := range strings.Split(readFile(t, "Dockerfile"), "\n") {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	out := filepath.Join(t.TempDir(), "app")
	cmd := exec.CommandContext(t.Context(), "bash", "-c", strings.Replace(build, "/out/app", out, 1))
	cmd.Dir = run.context
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s in the uploaded context: %v\n%s", build, err, b)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}

// cleanup.sh deletes the resource group it is given, and purges the group's vaults only when
// asked to with --purge.
func TestCleanupDeletesTheGroupAndPurgesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, purge := range []bool{false, true} {
		t.Run(fmt.Sprintf("purge=%v", purge), func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "az.log")
			env := append(localcloud.ScrubEnv(os.Environ()), "AZ="+self, fakeAzLogEnv+"="+log)
			args := []string{"--name-suffix", "abc123"}
			if purge {
				args = append(args, "--purge")
			}
			if stdout, stderr, err := runScript(t, t.Context(), env, "cleanup.sh", args...); err != nil {
				t.Fatalf("cleanup.sh: %v\n%s%s", err, stdout, stderr)
			}
			var deleted, purged []string
			for _, c := range fakeAzCalls(t, log) {
				switch command(c) {
				case "group delete":
					deleted = append(deleted, flagValue(c, "--name"))
				case "keyvault purge":
					purged = append(purged, flagValue(c, "--name"))
				}
			}
			if !slices.Equal(deleted, []string{"rg-kvboot-abc123"}) {
				t.Errorf("deleted groups %v, want [rg-kvboot-abc123]", deleted)
			}
			if want := []string(nil); purge {
				want = []string{"kv-boot-fake"}
				if !slices.Equal(purged, want) {
					t.Errorf("purged vaults %v, want %v", purged, want)
				}
			} else if len(purged) != 0 {
				t.Errorf("purged vaults %v without --purge", purged)
			}
		})
	}
}

// --- The offline rehearsal: the same script, AZ=azlocal, against the local cloud ---

// rehearsal is a local cloud with the environment a learner's shell gets from
// `set -a; . .localcloud/env; set +a` plus AZ=azlocal.
type rehearsal struct {
	cloud *localcloud.Cloud
	env   []string
}

func newRehearsal(t *testing.T) rehearsal {
	t.Helper()
	bin := azlocalOrSkip(t)
	dir := t.TempDir()
	cloud := localcloudtest.Start(t, func(o *localcloud.Options) { o.Dir = dir })
	return rehearsal{cloud: cloud, env: cloud.ChildEnv(os.Environ(), "AZ="+bin, "LOCALCLOUD_DIR="+dir, "DEPLOY_WAIT_SECONDS=120")}
}

// deploy runs deploy.sh and returns the app's URL, its last line.
func (r rehearsal) deploy(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	stdout, stderr, err := runScript(t, ctx, r.env, "deploy.sh", args...)
	t.Logf("deploy.sh %s:\n%s%s", strings.Join(args, " "), stderr, stdout)
	if err != nil {
		t.Fatalf("deploy.sh: %v", err)
	}
	if strings.Contains(stdout+stderr, defaultSecretValue) {
		t.Error("deploy.sh printed the secret's value")
	}
	url := lastLine(stdout)
	if !regexp.MustCompile(`^https://app-boot-[a-z0-9]+\.azurewebsites\.net$`).MatchString(url) {
		t.Fatalf("the last line is %q, want https://app-boot-<suffix>.azurewebsites.net", url)
	}
	return url
}

// get fetches the app through the local cloud's proxy, trusting only its CA.
func (r rehearsal) get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := r.cloud.HTTPClient().Get(url + "/api/SecretTest")
	if err != nil {
		t.Fatalf("GET %s/api/SecretTest: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// eventually polls the app until it serves the secret (want true) or fails to (want false): a
// restarted app takes a moment to listen again, as on App Service.
func (r rehearsal) eventually(t *testing.T, url string, serves bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		status, body := r.get(t, url)
		ok := status == http.StatusOK && strings.Contains(body, defaultSecretValue)
		if ok == serves {
			if !serves && strings.Contains(body, defaultSecretValue) {
				t.Fatalf("the app failed with %d but its answer holds the secret", status)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s the app still answers %d %.300s (want serving the secret: %v)", status, body, serves)
		}
		<-tick.C
	}
}

// C14: with no arguments, deploy.sh deploys everything (one `webapp identity assign` enables
// the identity) and the deployed app serves the secret it reads with that identity, while its
// settings hold no credential.
func TestDeployRehearsalServesTheSecret(t *testing.T) {
	t.Parallel()
	r := newRehearsal(t)
	url := r.deploy(t)
	status, body := r.get(t, url)
	if status != http.StatusOK || !strings.Contains(body, defaultSecretValue) {
		t.Fatalf("GET %s/api/SecretTest: %d %s", url, status, body)
	}

	name := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), ".azurewebsites.net")
	group := "rg-kvboot-" + strings.TrimPrefix(name, "app-boot-")
	var settings []struct{ Name, Value string }
	out := mustAzlocal(t, r.env, "webapp", "config", "appsettings", "list", "--name", name, "--resource-group", group, "-o", "json")
	if err := json.Unmarshal([]byte(out), &settings); err != nil {
		t.Fatalf("az webapp config appsettings list: %v\n%s", err, out)
	}
	var names []string
	for _, s := range settings {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	// az itself adds the last two for a container app; neither is a credential. A registry
	// user name or password here would mean the image pull still needs a secret.
	want := []string{"AZURE_KEYVAULT_URL", "DOCKER_REGISTRY_SERVER_URL", "SECRET_REFRESH_INTERVAL", "WEBSITES_ENABLE_APP_SERVICE_STORAGE", "WEBSITES_PORT"}
	if !slices.Equal(names, want) {
		t.Errorf("the app's settings are %v, want only %v: no credential", names, want)
	}
}

// deployment names what deploy.sh made for a suffix.
type deployment struct {
	group, app, vaultID, registryID string
}

func (r rehearsal) deployment(t *testing.T, suffix string) deployment {
	t.Helper()
	d := deployment{group: "rg-kvboot-" + suffix, app: "app-boot-" + suffix}
	d.vaultID = mustAzlocal(t, r.env, "keyvault", "show", "--name", "kv-boot-"+suffix, "--resource-group", d.group, "--query", "id", "-o", "tsv")
	d.registryID = mustAzlocal(t, r.env, "acr", "show", "--name", "acrboot"+suffix, "--resource-group", d.group, "--query", "id", "-o", "tsv")
	return d
}

func (r rehearsal) principalOf(t *testing.T, d deployment) string {
	t.Helper()
	return mustAzlocal(t, r.env, "webapp", "identity", "show", "--name", d.app, "--resource-group", d.group, "--query", "principalId", "-o", "tsv")
}

// C12 and C13: the platform registered the app's identity as a service principal; removing the
// identity deletes that principal, and the app, restarted without it, can no longer read its
// secret. Assigning an identity again (one command, with the role) makes a NEW principal,
// which needs its roles again; then the app works. This works repeatedly.
func TestRemovingTheIdentityBreaksTheAppUntilReassigned(t *testing.T) {
	t.Parallel()
	r := newRehearsal(t)
	url := r.deploy(t, "--name-suffix", "c12c13")
	d := r.deployment(t, "c12c13")
	r.eventually(t, url, true)

	principals := []string{r.principalOf(t, d)}
	for round := 1; round <= 2; round++ {
		old := principals[len(principals)-1]
		if got, err := azlocal(t, r.env, "ad", "sp", "show", "--id", old, "--query", "id", "-o", "tsv"); err != nil || got != old {
			t.Fatalf("round %d: the identity's service principal %s is not in the directory: %q %v", round, old, got, err)
		}

		mustAzlocal(t, r.env, "webapp", "identity", "remove", "--name", d.app, "--resource-group", d.group)
		if _, err := azlocal(t, r.env, "ad", "sp", "show", "--id", old); err == nil {
			t.Errorf("round %d: the service principal %s still exists after the identity was removed", round, old)
		}
		r.eventually(t, url, false)

		p := mustAzlocal(t, r.env, "webapp", "identity", "assign", "--name", d.app, "--resource-group", d.group,
			"--role", "Key Vault Secrets User", "--scope", d.vaultID, "--query", "principalId", "-o", "tsv")
		if p == "" || slices.Contains(principals, p) {
			t.Fatalf("round %d: assigning the identity again gave principal %q; earlier ones: %v", round, p, principals)
		}
		principals = append(principals, p)
		// AcrPull belonged to the deleted principal: the new one needs it to pull the image.
		mustAzlocal(t, r.env, "role", "assignment", "create", "--role", "AcrPull", "--assignee-object-id", p,
			"--assignee-principal-type", "ServicePrincipal", "--scope", d.registryID, "-o", "none")
		mustAzlocal(t, r.env, "webapp", "restart", "--name", d.app, "--resource-group", d.group)
		r.eventually(t, url, true)
	}
}

// roleAssignments lists every role assignment the local subscription has.
func (r rehearsal) roleAssignments(t *testing.T) []struct{ PrincipalID, Scope, RoleDefinitionID string } {
	t.Helper()
	out := mustAzlocal(t, r.env, "role", "assignment", "list", "--all", "-o", "json")
	var list []struct{ PrincipalID, Scope, RoleDefinitionID string }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("az role assignment list --all: %v\n%s", err, out)
	}
	return list
}

// cleanup.sh deletes the resource group and with it everything deploy.sh made: the web app and
// its identity's principal (C12), the vault, the registry, the plan, and every role assignment
// in the group, the app's and the caller's alike. Running it again finds nothing to do.
func TestCleanupLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	r := newRehearsal(t)
	r.deploy(t, "--name-suffix", "gone1")
	d := r.deployment(t, "gone1")
	principal := r.principalOf(t, d)
	inGroup := func(scope string) bool {
		return strings.HasPrefix(strings.ToLower(scope), strings.ToLower("/subscriptions/"+localcloud.SubscriptionID+"/resourceGroups/"+d.group+"/"))
	}
	before := 0
	for _, a := range r.roleAssignments(t) {
		if a.PrincipalID == principal || inGroup(a.Scope) {
			before++
		}
	}
	if before < 3 { // Key Vault Secrets Officer (caller), Key Vault Secrets User and AcrPull (app)
		t.Fatalf("before cleanup the group has %d role assignments, want at least 3", before)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for range 2 {
		if stdout, stderr, err := runScript(t, ctx, r.env, "cleanup.sh", "--name-suffix", "gone1"); err != nil {
			t.Fatalf("cleanup.sh: %v\n%s%s", err, stdout, stderr)
		}
	}

	if got := mustAzlocal(t, r.env, "group", "exists", "--name", d.group); got != "false" {
		t.Errorf("az group exists --name %s: %s, want false", d.group, got)
	}
	if out, err := azlocal(t, r.env, "webapp", "show", "--name", d.app, "--resource-group", d.group); err == nil {
		t.Errorf("the web app is still there: %s", out)
	}
	if _, err := azlocal(t, r.env, "ad", "sp", "show", "--id", principal); err == nil {
		t.Errorf("the app's service principal %s outlived the app", principal)
	}
	for _, a := range r.roleAssignments(t) {
		if a.PrincipalID == principal || inGroup(a.Scope) {
			t.Errorf("role assignment left behind: %+v", a)
		}
	}
}
