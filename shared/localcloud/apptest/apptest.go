// Package apptest runs a tutorial step's app the way the tests of each step need it: built once
// into a real binary, started as a child process with the environment a local cloud hands
// out, watched through its log, and stopped at the end of the test. Waiting is driven by the
// app's own log lines, never by sleeping.
package apptest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the Go package in dir (usually ".", the step under test) with the given build
// tags, once per test binary: every test of the package, parallel ones included, shares the
// binary. Main, called from TestMain, removes what Build made.
func Build(t testing.TB, dir string, tags ...string) string {
	t.Helper()
	key := dir + "\x00" + strings.Join(tags, ",")
	builds.mu.Lock()
	b, ok := builds.m[key]
	if !ok {
		b = &build{}
		builds.m[key] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = compile(dir, tags) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds = struct {
	mu  sync.Mutex
	m   map[string]*build
	dir string // made by the first build, removed by Main
}{m: map[string]*build{}}

func compile(dir string, tags []string) (string, error) {
	builds.mu.Lock()
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "apptest-")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = d
	}
	out, err := os.MkdirTemp(builds.dir, "bin-")
	builds.mu.Unlock()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(out, "app")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, b)
	}
	return bin, nil
}

// Main runs the tests and removes the binaries Build made: `os.Exit(apptest.Main(m))`.
func Main(m *testing.M) int {
	code := m.Run()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	return code
}

// App is a running app.
type App struct {
	t   testing.TB
	cmd *exec.Cmd
	// URL is the app's base URL, from its "listening" log line.
	URL string

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives or the app exits
	exited  bool
	done    chan struct{}
}

// WaitTimeout bounds every wait for a log line; it is a safety net for a broken app, not a
// timing assumption: a healthy app logs within milliseconds.
var WaitTimeout = 60 * time.Second

var listening = regexp.MustCompile(`url=(http://localhost:\d+)/`)

// Start runs bin with env (plus PORT=0, so the app picks a free port) and waits until it
// listens. The app is stopped with SIGTERM when the test ends.
func Start(t testing.TB, bin string, env []string) *App {
	t.Helper()
	a := &App{t: t, changed: make(chan struct{}), done: make(chan struct{})}
	a.cmd = exec.Command(bin)
	a.cmd.Env = append(env, "PORT=0")
	stderr, err := a.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stdout = io.Discard
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go a.read(stderr)
	t.Cleanup(a.Stop)
	line := a.WaitLog("listening")
	m := listening.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot find the URL in %q", line)
	}
	a.URL = m[1]
	return a
}

func (a *App) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		a.mu.Lock()
		a.lines = append(a.lines, sc.Text())
		close(a.changed)
		a.changed = make(chan struct{})
		a.mu.Unlock()
	}
	_ = a.cmd.Wait()
	a.mu.Lock()
	a.exited = true
	close(a.changed)
	a.mu.Unlock()
	close(a.done)
}

// PID is the app's process ID.
func (a *App) PID() int { return a.cmd.Process.Pid }

// Log is everything the app has logged so far.
func (a *App) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.lines, "\n")
}

// Mark is a position in the log: WaitLogAfter looks only at lines logged after it.
func (a *App) Mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lines)
}

// WaitLog waits for a log line containing substr and returns it.
func (a *App) WaitLog(substr string) string {
	a.t.Helper()
	return a.WaitLogAfter(0, substr)
}

// WaitLogAfter waits for a line containing substr logged after mark.
func (a *App) WaitLogAfter(mark int, substr string) string {
	a.t.Helper()
	deadline := time.After(WaitTimeout)
	for {
		a.mu.Lock()
		for _, l := range a.lines[min(mark, len(a.lines)):] {
			if strings.Contains(l, substr) {
				a.mu.Unlock()
				return l
			}
		}
		exited, changed := a.exited, a.changed
		a.mu.Unlock()
		if exited {
			a.t.Fatalf("the app exited before logging %q; its log:\n%s", substr, a.Log())
		}
		select {
		case <-changed:
		case <-deadline:
			a.t.Fatalf("the app did not log %q within %v; its log:\n%s", substr, WaitTimeout, a.Log())
		}
	}
}

// Refresh makes the app re-read its secret now (SIGHUP) and returns the log line that reports
// the outcome: "secret loaded" or "reading the secret failed".
func (a *App) Refresh() string {
	a.t.Helper()
	mark := a.Mark()
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		a.t.Fatal(err)
	}
	deadline := time.After(WaitTimeout)
	for {
		a.mu.Lock()
		for _, l := range a.lines[mark:] {
			if strings.Contains(l, "secret loaded") || strings.Contains(l, "reading the secret failed") {
				a.mu.Unlock()
				return l
			}
		}
		exited, changed := a.exited, a.changed
		a.mu.Unlock()
		if exited {
			a.t.Fatalf("the app exited instead of refreshing; its log:\n%s", a.Log())
		}
		select {
		case <-changed:
		case <-deadline:
			a.t.Fatalf("no refresh outcome logged within %v; log:\n%s", WaitTimeout, a.Log())
		}
	}
}

// Get fetches a path of the app and returns the status and body.
func (a *App) Get(path string) (int, string) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Environ is the app's environment as the operating system holds it (/proc on Linux): what
// anyone with access to the process, or to the app's settings, can read.
func (a *App) Environ() ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", a.PID()))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// Stop ends the app with SIGTERM, as a platform does, and waits for it.
func (a *App) Stop() {
	if a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(WaitTimeout):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}
