package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/apptest"
)

// proc is a running `localcloud` process.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func startProc(t *testing.T, bin, dir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--dir", dir, "--addr", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for line := range p.lines {
		if strings.Contains(line, "ready") {
			return p
		}
	}
	t.Fatalf("localcloud exited before printing ready: %v", <-p.done)
	return nil
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// client talks to the local cloud the way an app configured from DIR/env does.
type client struct {
	t    *testing.T
	http *http.Client
}

func newClient(t *testing.T, dir string) *client {
	env := readEnv(t, filepath.Join(dir, localcloud.EnvFile))
	proxy, err := url.Parse(env["HTTPS_PROXY"])
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(env["SSL_CERT_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("SSL_CERT_FILE holds no certificate")
	}
	return &client{t: t, http: &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxy),
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}}
}

func (c *client) do(req *http.Request) (int, []byte) {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// developerToken signs in as the developer principal from DIR/developer.env.
func (c *client) developerToken(dir string) string {
	dev := readEnv(c.t, filepath.Join(dir, localcloud.DeveloperEnvFile))
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {dev["AZURE_CLIENT_ID"]},
		"client_secret": {dev["AZURE_CLIENT_SECRET"]}, "scope": {"https://vault.azure.net/.default"}}
	req, _ := http.NewRequest(http.MethodPost, "https://login.microsoftonline.com/"+dev["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body := c.do(req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal(body, &tok) != nil {
		c.t.Fatalf("token: %d %s", status, body)
	}
	return tok.AccessToken
}

func (c *client) secret(token, method, name, body string) (int, []byte) {
	req, _ := http.NewRequest(method, localcloud.VaultURL+"secrets/"+name+"?api-version=7.6", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "localcloud-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "localcloud")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := apptest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestWritesTheEnvironmentFilesAndPrintsReady(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, binary, dir)
	env := readEnv(t, filepath.Join(dir, localcloud.EnvFile))
	for _, k := range []string{"HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "AZURE_TENANT_ID", "AZURE_KEYVAULT_URL"} {
		if env[k] == "" {
			t.Errorf("env lacks %s", k)
		}
	}
	for k := range env {
		if strings.Contains(k, "SECRET") || k == "AZURE_CLIENT_ID" || k == "HTTP_PROXY" {
			t.Errorf("env must hold no credential and no HTTP_PROXY, has %s", k)
		}
	}
	if env["AZURE_KEYVAULT_URL"] != localcloud.VaultURL {
		t.Errorf("AZURE_KEYVAULT_URL = %s", env["AZURE_KEYVAULT_URL"])
	}
	dev := readEnv(t, filepath.Join(dir, localcloud.DeveloperEnvFile))
	if dev["AZURE_CLIENT_ID"] != localcloud.DeveloperClientID || dev["AZURE_CLIENT_SECRET"] == "" {
		t.Errorf("developer.env = %v", dev)
	}
	c := newClient(t, dir)
	status, body := c.secret(c.developerToken(dir), http.MethodGet, localcloud.SecretName, "")
	if status != 200 || !bytes.Contains(body, []byte(localcloud.SecretValue)) {
		t.Fatalf("reading the well-known secret: %d %s", status, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}
	if err := <-p.done; err != nil {
		t.Fatalf("SIGTERM: exit %v, want a clean exit", err)
	}
	if _, err := os.Stat(filepath.Join(dir, localcloud.CAFile)); err != nil {
		t.Fatalf("shutting down removed the state: %v", err)
	}
}

// TestSourcedEnvFilesRunAnUnmodifiedSDKApp is the contract taken literally: a shell that loads
// DIR/env and DIR/developer.env, and nothing else, runs an unmodified Azure SDK app (step 02,
// which signs in with EnvironmentCredential) against the local cloud.
func TestSourcedEnvFilesRunAnUnmodifiedSDKApp(t *testing.T) {
	dir := t.TempDir()
	startProc(t, binary, dir)
	app := apptest.Build(t, "../../../02-app-registration", "nolocalcloud")
	script := filepath.Join(t.TempDir(), "run.sh")
	body := fmt.Sprintf("#!/bin/bash\nset -a; . %q; . %q; set +a\nexec %q\n",
		filepath.Join(dir, localcloud.EnvFile), filepath.Join(dir, localcloud.DeveloperEnvFile), app)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, script, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()})
	if status, body := a.Get("/api/SecretTest"); status != 200 || !strings.Contains(body, localcloud.SecretValue) {
		t.Fatalf("GET /api/SecretTest: %d %s\nlog:\n%s", status, body, a.Log())
	}
}

func TestAcknowledgedWriteSurvivesKill9AndTheCAIsKept(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, binary, dir)
	ca, _ := os.ReadFile(filepath.Join(dir, localcloud.CAFile))
	c := newClient(t, dir)
	status, body := c.secret(c.developerToken(dir), http.MethodPut, "survivor", `{"value":"still here"}`)
	if status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done

	startProc(t, binary, dir)
	again, _ := os.ReadFile(filepath.Join(dir, localcloud.CAFile))
	if !bytes.Equal(ca, again) {
		t.Fatal("a restart made a new CA: every client would have to trust it again")
	}
	c = newClient(t, dir)
	// The token of the new process must verify with the kept signing key, and the write must be there.
	status, body = c.secret(c.developerToken(dir), http.MethodGet, "survivor", "")
	if status != 200 || !bytes.Contains(body, []byte("still here")) {
		t.Fatalf("after kill -9: %d %s", status, body)
	}
}

func TestTokenFromBeforeARestartStillValidates(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, binary, dir)
	c := newClient(t, dir)
	tok := c.developerToken(dir)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	for range p.lines {
	}
	<-p.done
	startProc(t, binary, dir)
	c = newClient(t, dir)
	if status, body := c.secret(tok, http.MethodGet, localcloud.SecretName, ""); status != 200 {
		t.Fatalf("a token signed before the restart was refused: %d %s", status, body)
	}
}

func TestResetStartsAfresh(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, binary, dir)
	ca, _ := os.ReadFile(filepath.Join(dir, localcloud.CAFile))
	mine := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	for range p.lines {
	}
	<-p.done
	startProc(t, binary, dir, "--reset")
	again, _ := os.ReadFile(filepath.Join(dir, localcloud.CAFile))
	if bytes.Equal(ca, again) {
		t.Fatal("--reset kept the old CA")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("--reset removed a file the user made: %v", err)
	}
}

func TestBadFlagsSayWhatIsWrong(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := newCommand(&out, &errOut)
	cmd.SetArgs([]string{"--log-level", "loud", "--dir", t.TempDir()})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkProcessStartToReady measures `localcloud` from exec to its ready line, with DIR
// already initialised (the CA and keys exist), as a learner restarting it sees.
func BenchmarkProcessStartToReady(b *testing.B) {
	dir := b.TempDir()
	first := exec.Command(binary, "--dir", dir, "--addr", "127.0.0.1:0")
	waitReady(b, first)
	for b.Loop() {
		waitReady(b, exec.Command(binary, "--dir", dir, "--addr", "127.0.0.1:0"))
	}
}

func waitReady(b *testing.B, cmd *exec.Cmd) {
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "ready") {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

// BenchmarkIdleMemory reports the resident memory of an idle, ready localcloud (Linux only).
func BenchmarkIdleMemory(b *testing.B) {
	dir := b.TempDir()
	var rss float64
	for b.Loop() {
		cmd := exec.Command(binary, "--dir", dir, "--addr", "127.0.0.1:0")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() && !strings.Contains(sc.Text(), "ready") {
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			b.Skip("no /proc: ", err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var n float64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), &n)
				rss = n / 1024
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	b.ReportMetric(rss, "MB-RSS")
}
