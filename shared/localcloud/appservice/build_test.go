package appservice

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuildRunsTheDockerfilesGoBuildStep(t *testing.T) {
	if testRun.RunID != "ca1" || testRun.Registry != testRegistry || testRun.Status != RunSucceeded {
		t.Fatalf("run = %+v", testRun)
	}
	if !slices.Equal(testRun.Images, []string{testImage}) {
		t.Errorf("images = %v, want [%s]", testRun.Images, testImage)
	}
	if testRun.Finish.Before(testRun.Start) {
		t.Errorf("finish %v before start %v", testRun.Finish, testRun.Start)
	}
	for _, want := range []string{
		"Step 1/", "Step 3/", ": FROM golang:${GO_VERSION} AS build",
		"RUN go mod download\n ---> skipped",
		"this is the go build step",
		"running natively in ./: CGO_ENABLED=0 go build -trimpath -ldflags=-s -w ./\n", // GOOS dropped, -o replaced
		"GOOS ignored: the image runs natively on this machine",
		"Successfully tagged " + testImage,
		"digest: sha256:",
		"Run ID: ca1 was successful after",
	} {
		if !strings.Contains(testRun.Log, want) {
			t.Errorf("the run's log lacks %q:\n%s", want, testRun.Log)
		}
	}
}

func TestFailedBuildsExplainWhyAndKeepTheTag(t *testing.T) {
	broken := appFiles("broken")
	broken["main.go"] = strings.Replace(broken["main.go"], "func main() {", "func main() {\n\tnope()", 1)
	noGoBuild := appFiles("x")
	noGoBuild["deploy/Dockerfile"] = "FROM node:22\nCOPY . .\nRUN npm ci && npm run build\nCMD [\"node\", \"server.js\"]\n"

	for _, tc := range []struct {
		name       string
		context    []byte
		dockerfile string
		want       string
	}{
		{"compile error", contextOf(broken), "deploy/Dockerfile", "undefined: nope"},
		{"no go build step", contextOf(noGoBuild), "deploy/Dockerfile", "no `RUN ... go build ... <package>` step found"},
		{"missing Dockerfile", contextOf(appFiles("x")), "Dockerfile", "cannot read the Dockerfile Dockerfile"},
		{"Dockerfile outside the context", contextOf(appFiles("x")), "../Dockerfile", "must be relative to the build context"},
		{"not a gzip", []byte("PK\x03\x04 a zip"), "Dockerfile", "not a gzipped tar archive"},
		{"path traversal", tarGz(tarEntry{name: "../escaped.txt", body: "x"}), "Dockerfile", `"../escaped.txt" is outside the build context`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			run, err := f.svc.Build(context.Background(), testRegistry, []string{"app:v1"}, bytes.NewReader(tc.context), tc.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			if run.Status != RunFailed || len(run.Images) != 0 {
				t.Fatalf("run = %+v, want Failed without images", run)
			}
			if !strings.Contains(run.Log, tc.want) || !strings.Contains(run.Log, "Run ID: ca1 failed after") {
				t.Errorf("the run's log lacks %q:\n%s", tc.want, run.Log)
			}
			if got, ok := f.svc.Run(testRegistry, run.RunID); !ok || got.Log != run.Log {
				t.Errorf("Run(%s) = %+v, %v", run.RunID, got, ok)
			}
			f.svc.mu.Lock()
			img := f.svc.st.Registries[testRegistry].Images["app:v1"]
			f.svc.mu.Unlock()
			if img.RunID != "test" {
				t.Errorf("a failed build replaced the tag: %+v", img)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f.svc.workDir), "escaped.txt")); err == nil {
				t.Error("the archive wrote outside the build folder")
			}
		})
	}
}

func TestBuildNeedsAKnownRegistryAndImageNames(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Build(ctx, "nosuchreg", []string{"app:v1"}, bytes.NewReader(nil), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown registry: err = %v, want ErrNotFound", err)
	}
	for _, names := range [][]string{nil, {"App:v1"}, {"other.azurecr.io/app:v1"}, {"app@sha256:abc"}} {
		if _, err := f.svc.Build(ctx, testRegistry, names, bytes.NewReader(nil), ""); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("images %q: err = %v, want ErrInvalidArgument", names, err)
		}
	}
}

func TestLatestBuildOfATagWins(t *testing.T) {
	f := newFixture(t)
	f.createSite(t, SiteSpec{Name: "latest", Image: testImage})
	if v := callApp(t, f.svc, "latest").Version; v != "one" {
		t.Fatalf("version = %q, want one", v)
	}
	run, err := f.svc.Build(context.Background(), testRegistry, []string{"app:v1", "app:{{.Run.ID}}"}, bytes.NewReader(contextOf(appFiles("two"))), "deploy/Dockerfile")
	if err != nil || run.Status != RunSucceeded {
		t.Fatalf("%v\n%s", err, run.Log)
	}
	if want := []string{testImage, testRegistry + ".azurecr.io/app:ca1"}; !slices.Equal(run.Images, want) {
		t.Errorf("images = %v, want %v", run.Images, want)
	}
	// The running app keeps its image until it restarts, as a container does.
	if v := callApp(t, f.svc, "latest").Version; v != "one" {
		t.Errorf("before the restart: version = %q, want one", v)
	}
	if err := f.svc.Restart("latest"); err != nil {
		t.Fatal(err)
	}
	if v := callApp(t, f.svc, "latest").Version; v != "two" {
		t.Errorf("after the restart: version = %q, want two", v)
	}
	if _, err := os.Stat(filepath.Join(f.svc.workDir, "images", testRegistry, "test")); !os.IsNotExist(err) {
		t.Errorf("the replaced image is still stored (err = %v)", err)
	}
	if got := f.svc.Images(testRegistry); !slices.Equal(got, []string{testRegistry + ".azurecr.io/app:ca1", testImage}) {
		t.Errorf("Images = %v", got)
	}
}

func TestExtractRefusesEntriesOutsideTheContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		limit   int64
		want    string
	}{
		{"dot-dot", []tarEntry{{name: "a/../../evil", body: "x"}}, 1 << 20, "outside the build context"},
		{"absolute", []tarEntry{{name: "/tmp/evil", body: "x"}}, 1 << 20, "outside the build context"},
		{"link out", []tarEntry{{name: "l", link: "../..", typ: tar.TypeSymlink}}, 1 << 20, "leads out"},
		{"absolute link", []tarEntry{{name: "l", link: "/etc", typ: tar.TypeSymlink}}, 1 << 20, "leads out"},
		{"link out through a link", []tarEntry{
			{name: "a", link: ".", typ: tar.TypeSymlink},
			{name: "a/b", link: "..", typ: tar.TypeSymlink},
		}, 1 << 20, "leads out"},
		{"write through a link", []tarEntry{
			{name: "d", typ: tar.TypeDir},
			{name: "d/l", link: "..", typ: tar.TypeSymlink},
			{name: "d/l/l2", link: "..", typ: tar.TypeSymlink},
		}, 1 << 20, ""},
		{"hard link", []tarEntry{{name: "h", link: "/etc/passwd", typ: tar.TypeLink}}, 1 << 20, "hard link"},
		{"too large", []tarEntry{{name: "a", body: "0123456789"}, {name: "b", body: "0123456789"}}, 15, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "ctx")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			err := extract(bytes.NewReader(tarGz(tc.entries...)), dir, tc.limit)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			for _, outside := range []string{"evil", "l2"} {
				if _, err := os.Lstat(filepath.Join(parent, outside)); err == nil {
					t.Errorf("%s was created outside the context", outside)
				}
			}
		})
	}
}

func TestExtractKeepsFilesFoldersAndInnerLinks(t *testing.T) {
	dir := t.TempDir()
	err := extract(bytes.NewReader(tarGz(
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "./cmd/app/main.go", body: "package main"},
		tarEntry{name: "./run.sh", body: "#!/bin/sh"},
		tarEntry{name: "./cmd/current", link: "app", typ: tar.TypeSymlink},
	)), dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmd", "current", "main.go")); err != nil || string(b) != "package main" {
		t.Errorf("through the inner link: %q, %v", b, err)
	}
}

func TestDockerfileGoBuildStepIsFound(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		want             goBuildPlan
	}{
		{"the test app's", testDockerfile, goBuildPlan{dir: ".", env: []string{"CGO_ENABLED=0"}, flags: []string{"-trimpath", "-ldflags=-s -w"}, packages: []string{"./"}}},
		{"a step of a repository", "FROM golang:1.25 AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /out/app ./03-managed-identity\n",
			goBuildPlan{dir: ".", env: []string{"CGO_ENABLED=0"}, packages: []string{"./03-managed-identity"}}},
		{"cd in a chain", "FROM golang\nWORKDIR /src\nCOPY . .\nRUN go mod download && cd cmd/app && go build -o=/bin/app -v .\n",
			goBuildPlan{dir: "cmd/app", flags: []string{"-v"}, packages: []string{"."}}},
		{"exec form and absolute package", "FROM golang\nWORKDIR /app\nCOPY . /app\nRUN [\"go\", \"build\", \"-o\", \"/x\", \"/app/cmd/srv\"]\n",
			goBuildPlan{dir: ".", packages: []string{"./cmd/srv"}}},
		{"ENV and ARG", "FROM golang\nARG VERSION=1.2\nENV CGO_ENABLED=0 GOFLAGS=-mod=mod PATH=/x\nWORKDIR /src\nCOPY . .\nRUN go build -ldflags \"-X main.version=${VERSION}\" -o app .\n",
			goBuildPlan{dir: ".", env: []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod"}, flags: []string{"-ldflags=-X main.version=1.2"}, packages: []string{"."}}},
		{"relative WORKDIR", "FROM golang\nWORKDIR /src\nCOPY . .\nWORKDIR app\nRUN go build -o /out/app /src/lib\n",
			goBuildPlan{dir: "app", packages: []string{"../lib"}}},
		{"inherited stage", "FROM golang AS base\nWORKDIR /src\nCOPY . .\nFROM base AS build\nRUN go build -o /x ./cmd/x\nFROM scratch\nCOPY --from=build /x /x\n",
			goBuildPlan{dir: ".", packages: []string{"./cmd/x"}}},
		{"continuations and comments", "FROM golang\n# build it\nRUN \\\n  # the flags\n  go build \\\n\n  -trimpath \\\n  -o /x .\n",
			goBuildPlan{dir: ".", flags: []string{"-trimpath"}, packages: []string{"."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			got, err := parseDockerfile(tc.dockerfile, &log)
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			if got.dir != tc.want.dir || !slices.Equal(got.env, tc.want.env) || !slices.Equal(got.flags, tc.want.flags) || !slices.Equal(got.packages, tc.want.packages) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestDockerfileWithoutAUsableGoBuildIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"empty", "# nothing\n", "empty"},
		{"no go build", "FROM alpine\nRUN echo $(date)\n", "no `RUN ... go build"},
		{"before FROM", "RUN go build .\nFROM golang\n", "RUN before the first FROM"},
		{"outside the context", "FROM golang\nWORKDIR /src\nCOPY . .\nRUN cd /tmp && go build -o /x .\n", "outside /src"},
		{"command substitution", "FROM golang\nRUN go build -ldflags \"-X main.v=$(git describe)\" .\n", "command substitution"},
		{"unterminated quote", "FROM golang\nRUN go build -ldflags \"-s .\n", "unterminated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDockerfile(tc.dockerfile, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
