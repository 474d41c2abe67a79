package appservice

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/directory"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/identity"
	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud/internal/testsync"
)

const (
	testTenant       = "6f1d3c2a-0b4e-4c1f-9a7d-2e5b8c9d0a11"
	testSubscription = "0c8e4b7a-5d2f-4e6a-8b1c-3f9a7d6e5c22"
	testGroup        = "rg-test"
	testRegistry     = "testreg"
	testImage        = testRegistry + ".azurecr.io/app:v1"
)

func groupID() string { return "/subscriptions/" + testSubscription + "/resourceGroups/" + testGroup }
func registryID(name string) string {
	return groupID() + "/providers/Microsoft.ContainerRegistry/registries/" + name
}
func planID() string            { return groupID() + "/providers/Microsoft.Web/serverfarms/plan" }
func siteID(name string) string { return groupID() + "/providers/Microsoft.Web/sites/" + name }

// The test app: a web server on $PORT that answers with its environment and what it was sent.
// CRASH_WITH makes it exit at once, as a misconfigured app does; NEVER_LISTEN makes it hang.
const testAppMain = `package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const version = "VERSION"

func main() {
	if msg := os.Getenv("CRASH_WITH"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(3)
	}
	if os.Getenv("NEVER_LISTEN") != "" {
		fmt.Println("busy with something else")
		time.Sleep(time.Hour) // the platform kills it long before
	}
	ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on", ln.Addr())
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"version": version, "pid": os.Getpid(), "env": env,
			"host": r.Host, "header": r.Header, "path": r.URL.RequestURI()})
	}))
}
`

// testDockerfile is the shape of 04-deploy's: a Go build stage and a distroless final stage.
const testDockerfile = `# syntax=docker/dockerfile:1
ARG GO_VERSION=1.25
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod ./
RUN go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build \
      -trimpath -ldflags="-s -w" \
      -o /out/app ./

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /app
USER nonroot:nonroot
ENTRYPOINT ["/app"]
`

// appFiles is the test app's build context, its Dockerfile in deploy/ as 04-deploy's is.
func appFiles(version string) map[string]string {
	return map[string]string{
		"go.mod":            "module example.com/app\n\ngo 1.25\n",
		"main.go":           strings.Replace(testAppMain, "VERSION", version, 1),
		"deploy/Dockerfile": testDockerfile,
	}
}

// tarEntry is one entry of a hand-made archive (for the unsafe ones).
type tarEntry struct {
	name, body, link string
	typ              byte
}

// tarGz packs entries; it panics on what can only be a mistake in the test itself.
func tarGz(entries ...tarEntry) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// contextOf packs files as az acr build packs a folder.
func contextOf(files map[string]string) []byte {
	var entries []tarEntry
	for _, name := range slices.Sorted(maps.Keys(files)) {
		entries = append(entries, tarEntry{name: "./" + name, body: files[name]})
	}
	return tarGz(entries...)
}

// The image every test runs, built once by TestMain through the build service itself.
var (
	testRun      Run
	testImageBin string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		tmp, err := os.MkdirTemp("", "appservice-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		dir, _ := directory.New(directory.Options{})
		if _, err := dir.AddTenant(testTenant, "test"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		s, err := New(Options{Directory: dir, Identity: identity.New(identity.Options{Directory: dir}), TenantID: testTenant, WorkDir: filepath.Join(tmp, "work")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.Close()
		if _, err := s.CreateRegistry(testRegistry, registryID(testRegistry)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		testRun, err = s.Build(context.Background(), testRegistry, []string{"app:v1"}, bytes.NewReader(contextOf(appFiles("one"))), "deploy/Dockerfile")
		if err != nil || testRun.Status != RunSucceeded {
			fmt.Fprintf(os.Stderr, "building the test image: %v\n%s", err, testRun.Log)
			return 1
		}
		// Keep the binary outside the service's folder, for every test to push into its own.
		s.mu.Lock()
		built := filepath.Join(s.workDir, s.st.Registries[testRegistry].Images["app:v1"].Path)
		s.mu.Unlock()
		testImageBin = filepath.Join(tmp, "app")
		if err := copyFile(built, testImageBin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// fixture is a service with a registry holding the test image and a plan.
type fixture struct {
	svc  *Service
	dir  *directory.Directory
	logs *testsync.Buffer
}

func newFixture(t *testing.T, edit ...func(*Options)) *fixture {
	t.Helper()
	dir, err := directory.New(directory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dir.AddTenant(testTenant, "test"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, logs: &testsync.Buffer{}}
	opts := Options{
		Directory: dir,
		Identity:  identity.New(identity.Options{Directory: dir}),
		TenantID:  testTenant,
		Logger:    slog.New(slog.NewTextHandler(f.logs, nil)),
		WorkDir:   t.TempDir(),
	}
	for _, e := range edit {
		e(&opts)
	}
	f.svc = f.open(t, opts)
	if _, err := f.svc.CreateRegistry(testRegistry, registryID(testRegistry)); err != nil {
		t.Fatal(err)
	}
	f.push(t, "app:v1")
	if _, err := f.svc.CreatePlan("plan", planID(), "B1"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) open(t *testing.T, opts Options) *Service {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// push puts the test image into the fixture's registry under repoTag, as a build would.
func (f *fixture) push(t *testing.T, repoTag string) {
	t.Helper()
	rel := filepath.Join("images", testRegistry, "test", imageFile)
	if err := os.MkdirAll(filepath.Join(f.svc.workDir, filepath.Dir(rel)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(testImageBin, filepath.Join(f.svc.workDir, rel)); err != nil {
		t.Fatal(err)
	}
	err := f.svc.mutate(func() error {
		f.svc.st.Registries[testRegistry].Images[repoTag] = imageRecord{Path: rel, Digest: "sha256:test", RunID: "test"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) createSite(t *testing.T, spec SiteSpec) Site {
	t.Helper()
	if spec.ResourceID == "" {
		spec.ResourceID = siteID(spec.Name)
	}
	if spec.PlanID == "" {
		spec.PlanID = planID()
	}
	site, err := f.svc.CreateSite(spec)
	if err != nil {
		t.Fatal(err)
	}
	return site
}

// request sends a request for a web app through the front door's handler.
func request(t *testing.T, s *Service, host, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	r.RemoteAddr = "192.0.2.7:4567"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

type appReply struct {
	Version string            `json:"version"`
	PID     int               `json:"pid"`
	Env     map[string]string `json:"env"`
	Host    string            `json:"host"`
	Header  http.Header       `json:"header"`
	Path    string            `json:"path"`
}

// callApp asks the web app for its environment, through the handler.
func callApp(t *testing.T, s *Service, site string) appReply {
	t.Helper()
	w := request(t, s, site+".azurewebsites.net", "/env?x=1")
	if w.Code != http.StatusOK {
		st, _ := s.Site(site)
		t.Fatalf("GET https://%s.azurewebsites.net: %d\n%s\nLastError: %s\nlogs:\n%s", site, w.Code, w.Body, st.LastError, s.Logs(site))
	}
	var reply appReply
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return reply
}

// processGone reports whether no process has the ID any more.
func processGone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	return p.Signal(syscall.Signal(0)) != nil
}
