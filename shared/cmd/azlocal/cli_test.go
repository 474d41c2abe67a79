package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// azlocal runs a command line in this process with env as its whole environment.
func azlocal(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errOut},
		func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "create", "--location", "westeurope"}, "ERROR: the following arguments are required: --name/-n\n"},
		{[]string{"keyvault", "create"}, "ERROR: the following arguments are required: --name/-n, --resource-group/-g\n"},
		{[]string{"keyvault", "secret", "set", "--vault-name", "v"}, "ERROR: the following arguments are required: --name/-n\n"},
		{[]string{"webapp", "create", "-n", "a", "-g", "rg"}, "ERROR: the following arguments are required: --plan/-p\n"},
		{[]string{"group", "show", "-n", "rg", "--bogus"}, "ERROR: unrecognized arguments: --bogus\n"},
		{[]string{"group", "show", "-n", "rg", "extra"}, "ERROR: unrecognized arguments: extra\n"},
		{[]string{"group", "show", "-n", "rg", "-o", "xml"}, "ERROR: argument --output/-o: invalid choice: 'xml' (choose from 'json', 'jsonc', 'none', 'table', 'tsv', 'yaml', 'yamlc')\n"},
		{[]string{"group", "show", "-n", "rg", "--query", "[0"}, "ERROR: argument --query: invalid jmespath_type value: '[0'\n"},
		{[]string{"keyvault", "secret", "set", "--vault-name", "v", "-n", "s"}, "ERROR: usage error: --value VALUE | --file PATH\n"},
		{[]string{"ad", "sp", "create-for-rbac", "--role", "Reader"}, "ERROR: Usage error: To create role assignments, specify both --role and --scopes.\n"},
		{[]string{"acr", "build", "-r", "reg"}, "ERROR: the following arguments are required: <SOURCE_LOCATION>\n"},
	} {
		code, stdout, stderr := azlocal(t, nil, tc.args...)
		if code != exitUsage || stderr != tc.want || stdout != "" {
			t.Errorf("azlocal %s: exit %d, stderr %q, stdout %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, stdout, tc.want)
		}
	}
}

func TestUnknownCommandListsWhatIsEmulated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"xyz"}, "ERROR: 'xyz' is not an az command emulated by azlocal. See 'azlocal --help'.\n"},
		{[]string{"-o", "tsv", "vm", "create", "--name", "x"}, "ERROR: 'vm create' is not an az command emulated by azlocal. See 'azlocal --help'.\n"},
		{[]string{"group", "move", "--name", "x"}, "ERROR: 'group move' is not an az command emulated by azlocal. See 'azlocal --help'.\n"},
		{[]string{"webapp", "config", "hostname", "add"}, "ERROR: 'webapp config hostname add' is not an az command emulated by azlocal. See 'azlocal --help'.\n"},
	} {
		code, _, stderr := azlocal(t, nil, tc.args...)
		if code != exitUsage || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("azlocal %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
		for _, cmd := range []string{"az group create", "az keyvault secret set", "az webapp identity assign", "az acr build"} {
			if !strings.Contains(stderr, "\n  "+cmd+"\n") {
				t.Errorf("azlocal %s: the list of emulated commands lacks %q:\n%s", strings.Join(tc.args, " "), cmd, stderr)
			}
		}
	}
}

func TestAGroupAlonePrintsItsHelp(t *testing.T) {
	code, stdout, stderr := azlocal(t, nil, "keyvault", "secret")
	if code != 0 || !strings.Contains(stdout, "set") || !strings.Contains(stdout, "show") || stderr != "" {
		t.Errorf("azlocal keyvault secret: exit %d, stdout %q, stderr %q; want its help", code, stdout, stderr)
	}
}

func TestNormalizeArgs(t *testing.T) {
	root := newRoot(&app{})
	for _, tc := range []struct{ in, want string }{
		{"ad sp create-for-rbac --role R --scopes /a /b -n x", "ad sp create-for-rbac --role R --scopes=/a --scopes=/b -n x"},
		{"keyvault create -n v --enable-rbac-authorization false -g rg", "keyvault create -n v --enable-rbac-authorization=false -g rg"},
		{"keyvault create -n v --enable-rbac-authorization -g rg", "keyvault create -n v --enable-rbac-authorization -g rg"},
		{"webapp create -n a --assign-identity --scope /s", "webapp create -n a --assign-identity=[system] --scope /s"},
		{"webapp create -n a --assign-identity [system] --https-only true", "webapp create -n a --assign-identity=[system] --https-only=true"},
		{"webapp config appsettings set -n a --settings A=1 B=x=y", "webapp config appsettings set -n a --settings=A=1 --settings=B=x=y"},
	} {
		if got := strings.Join(normalizeArgs(root, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("normalizeArgs(%s)\n = %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// writeEnv writes DIR/env and DIR/developer.env naming a proxy at addr.
func writeEnv(t *testing.T, dir, addr string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := "HTTPS_PROXY=http://" + addr + "\nLOCALCLOUD_CA_FILE=" + filepath.Join(dir, "ca.pem") + "\n"
	for name, text := range map[string]string{localcloud.EnvFile: env, localcloud.DeveloperEnvFile: "AZURE_TENANT_ID=t\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindDir(t *testing.T) {
	root := t.TempDir()
	explicit := filepath.Join(root, "elsewhere")
	writeEnv(t, explicit, "127.0.0.1:1")
	nested := filepath.Join(root, "project", "04-deploy", "sub")
	if err := os.MkdirAll(nested, 0o700); err != nil {
		t.Fatal(err)
	}
	writeEnv(t, filepath.Join(root, "project", ".localcloud"), "127.0.0.1:1")

	getenv := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	if got, err := findDir(getenv(map[string]string{"LOCALCLOUD_DIR": explicit})); err != nil || got != explicit {
		t.Errorf("with LOCALCLOUD_DIR: %q, %v; want %q", got, err, explicit)
	}
	if _, err := findDir(getenv(map[string]string{"LOCALCLOUD_DIR": filepath.Join(root, "nothing")})); err == nil ||
		!strings.Contains(err.Error(), noCloud) {
		t.Errorf("LOCALCLOUD_DIR without an env file: %v; want %q", err, noCloud)
	}
	t.Chdir(nested)
	want, _ := filepath.EvalSymlinks(filepath.Join(root, "project", ".localcloud"))
	got, err := findDir(getenv(nil))
	if got, _ = filepath.EvalSymlinks(got); err != nil || got != want {
		t.Errorf("from a sub folder: %q, %v; want the parent's %q", got, err, want)
	}
	t.Chdir(filepath.Join(root, "project"))
	if got, err := findDir(getenv(nil)); err != nil || filepath.Base(got) != ".localcloud" {
		t.Errorf("from the project folder: %q, %v", got, err)
	}
	t.Chdir(root)
	if _, err := findDir(getenv(nil)); err == nil || !strings.Contains(err.Error(), noCloud) {
		t.Errorf("with no .localcloud anywhere: %v; want %q", err, noCloud)
	}
}

func TestNoRunningCloudIsAClearError(t *testing.T) {
	// A port that was listening a moment ago and is now closed: nothing answers there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	writeEnv(t, dir, addr)
	code, stdout, stderr := azlocal(t, map[string]string{"LOCALCLOUD_DIR": dir}, "group", "show", "-n", "rg")
	want := "ERROR: no local cloud found: start one with 'go run ./shared/cmd/localcloud' (nothing answers at " + addr
	if code != exitError || stdout != "" || !strings.HasPrefix(stderr, want) {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	code, _, stderr = azlocal(t, map[string]string{"LOCALCLOUD_DIR": filepath.Join(dir, "missing")}, "account", "show")
	if code != exitError || !strings.HasPrefix(stderr, "ERROR: "+noCloud) {
		t.Errorf("without a local cloud folder: exit %d, stderr %q", code, stderr)
	}
}

func TestCommandsThatFailBeforeReachingTheCloud(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "delete", "-n", "rg"}, "ERROR: Unable to prompt for confirmation as no tty available. Use --yes.\n"},
		{[]string{"webapp", "deploy", "-n", "app", "-g", "rg", "--src-path", "app.zip"}, "ERROR: 'webapp deploy' uploads a package to the app's Kudu (SCM) site, which the local cloud does not emulate."},
		{[]string{"keyvault", "create", "-n", "v", "-g", "rg", "--enable-rbac-authorization", "false"}, "ERROR: the local cloud's Key Vault emulates only the Azure RBAC permission model"},
		{[]string{"webapp", "create", "-n", "a", "-g", "rg", "-p", "p", "--runtime", "NODE:20-lts"}, "ERROR: the local cloud's App Service runs container images only"},
	} {
		code, stdout, stderr := azlocal(t, nil, tc.args...)
		if code != exitError || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("azlocal %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

func TestCommandListIsSorted(t *testing.T) {
	list := commandList(newRoot(&app{}))
	if !slices.IsSorted(list) || len(list) < 30 {
		t.Errorf("command list: %v", list)
	}
}
