package appservice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Registry is an Azure Container Registry.
type Registry struct {
	Name        string
	ResourceID  string
	LoginServer string // {name}.azurecr.io
	CreatedAt   time.Time
}

// Run is one ACR build run (az acr build): its status, the images it pushed and its log.
type Run struct {
	RunID    string // ca1, ca2, … per registry, as ACR numbers them
	Registry string
	Status   string // RunSucceeded or RunFailed
	// Images are the images the run pushed, as {registry}.azurecr.io/{repository}:{tag}; none
	// when it failed.
	Images        []string
	Log           string
	Start, Finish time.Time
}

type registryState struct {
	Registry
	NextRun int                    `json:"nextRun"`
	Runs    []Run                  `json:"runs"`   // oldest first, at most maxRunsKept
	Images  map[string]imageRecord `json:"images"` // by "repository:tag"
}

// imageRecord is a pushed image: the binary a run built.
type imageRecord struct {
	Path   string    `json:"path"` // relative to WorkDir
	Digest string    `json:"digest"`
	RunID  string    `json:"runId"`
	Pushed time.Time `json:"pushed"`
}

// CreateRegistry creates a registry. Creating it again with the same resource ID returns it
// unchanged (ARM's PUT is create-or-update); registry names are global, so a name used by
// another resource is ErrAlreadyExists.
func (s *Service) CreateRegistry(name, resourceID string) (Registry, error) {
	if !validName(name, 5, 50, "") {
		return Registry{}, fmt.Errorf("%w: registry name %q must be 5-50 letters and digits", ErrInvalidArgument, name)
	}
	if err := checkResourceID("registry", resourceID); err != nil {
		return Registry{}, err
	}
	var reg Registry
	err := s.mutate(func() error {
		key := strings.ToLower(name)
		if old, ok := s.st.Registries[key]; ok {
			if !strings.EqualFold(old.ResourceID, resourceID) {
				return fmt.Errorf("%w: the registry name %s is already in use; registry names are global, choose another", ErrAlreadyExists, name)
			}
			reg = old.Registry
			return nil
		}
		reg = Registry{Name: name, ResourceID: resourceID, LoginServer: key + "." + RegistryDNSSuffix, CreatedAt: s.now().UTC()}
		s.st.Registries[key] = &registryState{Registry: reg, NextRun: 1, Images: map[string]imageRecord{}}
		return nil
	})
	if err == nil {
		s.log.Info("registry created", "registry", reg.Name)
	}
	return reg, err
}

// Registry looks a registry up by name.
func (s *Service) Registry(name string) (Registry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.Registries[strings.ToLower(name)]
	if !ok {
		return Registry{}, false
	}
	return r.Registry, true
}

// DeleteRegistry deletes a registry with its images and runs. Apps running one of its images
// keep running, as containers do on Azure; their next start fails to pull.
func (s *Service) DeleteRegistry(name string) error {
	key := strings.ToLower(name)
	err := s.mutate(func() error {
		if _, ok := s.st.Registries[key]; !ok {
			return fmt.Errorf("%w: registry %s", ErrNotFound, name)
		}
		delete(s.st.Registries, key)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("registry deleted", "registry", name)
	return os.RemoveAll(filepath.Join(s.workDir, "images", key))
}

// Image is a parsed image reference.
type Image struct {
	Registry   string // login server, for example myregistry.azurecr.io
	Repository string
	Tag        string
}

func (i Image) String() string { return i.Registry + "/" + i.Repository + ":" + i.Tag }

var (
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagPattern        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostPattern       = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?$`)
)

// ParseImage parses a full image reference, {registry}/{repository}[:{tag}] (the tag defaults to
// latest), as linuxFxVersion names it after "DOCKER|". Digests (@sha256:…) are not supported.
func ParseImage(ref string) (Image, error) {
	host, rest, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") || !hostPattern.MatchString(host) {
		return Image{}, fmt.Errorf("%w: image %q must name its registry, as in myregistry.azurecr.io/app:v1", ErrInvalidArgument, ref)
	}
	return parseRepoTag(host, rest, ref)
}

func parseRepoTag(host, repoTag, ref string) (Image, error) {
	if strings.Contains(repoTag, "@") {
		return Image{}, fmt.Errorf("%w: image %q: digests are not supported here, use a tag", ErrInvalidArgument, ref)
	}
	repo, tag := repoTag, "latest"
	if i := strings.LastIndex(repoTag, ":"); i >= 0 {
		repo, tag = repoTag[:i], repoTag[i+1:]
	}
	if !repositoryPattern.MatchString(repo) || !tagPattern.MatchString(tag) {
		return Image{}, fmt.Errorf("%w: image %q is not a valid repository[:tag] (lower-case repository, tag of letters, digits, '_', '.', '-')", ErrInvalidArgument, ref)
	}
	return Image{Registry: host, Repository: repo, Tag: tag}, nil
}

// imageNames turns a build's image names ("app:v1", "{{.Run.ID}}" allowed, or a full reference
// in this registry) into references in the registry.
func imageNames(loginServer, runID string, names []string) ([]Image, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: name at least one image to push (az acr build --image app:v1)", ErrInvalidArgument)
	}
	var out []Image
	for _, n := range names {
		n = strings.ReplaceAll(n, "{{.Run.ID}}", runID)
		var img Image
		var err error
		if host, rest, ok := strings.Cut(n, "/"); ok && strings.ContainsAny(host, ".:") {
			if !strings.EqualFold(host, loginServer) {
				return nil, fmt.Errorf("%w: image %q is not in this registry (%s)", ErrInvalidArgument, n, loginServer)
			}
			img, err = parseRepoTag(loginServer, rest, n)
		} else {
			img, err = parseRepoTag(loginServer, n, n)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// PutSource keeps an uploaded build context (the blob az acr build uploads to the URL that
// listBuildSourceUploadUrl gave it) under relativePath, such as source/{id}.tar.gz.
func (s *Service) PutSource(relativePath string, r io.Reader) error {
	p, err := s.sourcePath(relativePath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	n, err := io.Copy(f, io.LimitReader(r, maxContextBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > maxContextBytes {
		return fmt.Errorf("%w: the build context is larger than %d MiB; add a .dockerignore", ErrInvalidArgument, maxContextBytes>>20)
	}
	return os.Rename(f.Name(), p)
}

// OpenSource opens a context kept by PutSource.
func (s *Service) OpenSource(relativePath string) (io.ReadCloser, error) {
	p, err := s.sourcePath(relativePath)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no uploaded source at %s", ErrNotFound, relativePath)
	}
	return f, err
}

func (s *Service) sourcePath(relativePath string) (string, error) {
	p := filepath.FromSlash(relativePath)
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("%w: source location %q must be a relative path such as source/1234.tar.gz", ErrInvalidArgument, relativePath)
	}
	return filepath.Join(s.workDir, "uploads", p), nil
}

// Build runs the build stage of a Dockerfile natively: it extracts the gzipped tar context into
// a temporary folder and runs the Dockerfile's `go build` RUN step there (CGO_ENABLED, flags and
// WORKDIR honoured; the output goes to the image store), since no container engine exists here.
// Anything wrong with the source (an unsafe archive, a Dockerfile without a recognisable
// `RUN ... go build`, a compile error) makes a Failed run whose log says why; the error is only
// for a build that cannot become a run (unknown registry, bad image names, closed service). The
// last successful build of a tag wins.
func (s *Service) Build(ctx context.Context, registry string, images []string, contextTarGz io.Reader, dockerfilePath string) (Run, error) {
	key := strings.ToLower(registry)
	// Count the build before Close can start waiting for builds: both happen under mu.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Run{}, ErrClosed
	}
	s.builds.Add(1)
	s.mu.Unlock()
	defer s.builds.Done()

	var run Run
	var refs []Image
	err := s.mutate(func() error {
		reg, ok := s.st.Registries[key]
		if !ok {
			return fmt.Errorf("%w: registry %s", ErrNotFound, registry)
		}
		run = Run{RunID: "ca" + strconv.Itoa(reg.NextRun), Registry: reg.Name, Start: s.now().UTC()}
		var err error
		if refs, err = imageNames(reg.LoginServer, run.RunID, images); err != nil {
			return err
		}
		reg.NextRun++
		return nil
	})
	if err != nil {
		return Run{}, err
	}

	// A build ends with its caller's context, or when the service closes.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	outDir := filepath.Join(s.workDir, "images", key, run.RunID)
	log := &runLog{now: s.now}
	digest, buildErr := s.build(ctx, log, contextTarGz, dockerfilePath, outDir, refs)
	run.Finish = s.now().UTC()
	elapsed := run.Finish.Sub(run.Start).Round(time.Second)
	if buildErr != nil {
		run.Status = RunFailed
		log.printf("Run ID: %s failed after %s. Error: %v", run.RunID, elapsed, buildErr)
		_ = os.RemoveAll(outDir)
	} else {
		run.Status = RunSucceeded
		for _, ref := range refs {
			run.Images = append(run.Images, ref.String())
		}
		log.printf("Run ID: %s was successful after %s", run.RunID, elapsed)
	}
	run.Log = log.String()

	binary := filepath.Join("images", key, run.RunID, imageFile)
	err = s.mutate(func() error {
		reg, ok := s.st.Registries[key]
		if !ok {
			return fmt.Errorf("%w: registry %s was deleted during the build", ErrNotFound, registry)
		}
		if run.Status == RunSucceeded {
			for _, ref := range refs {
				reg.Images[ref.Repository+":"+ref.Tag] = imageRecord{Path: binary, Digest: digest, RunID: run.RunID, Pushed: run.Finish}
			}
		}
		reg.Runs = append(reg.Runs, run)
		if len(reg.Runs) > maxRunsKept {
			reg.Runs = slices.Delete(reg.Runs, 0, len(reg.Runs)-maxRunsKept)
		}
		return nil
	})
	if err != nil {
		_ = os.RemoveAll(outDir)
		return Run{}, err
	}
	s.log.Info("build run", "registry", run.Registry, "run_id", run.RunID, "status", run.Status,
		"images", run.Images, "duration", run.Finish.Sub(run.Start).String())
	s.removeUntaggedImages(key)
	return run, nil
}

// imageFile is the binary's name inside a run's folder.
var imageFile = func() string {
	if runtime.GOOS == "windows" {
		return "app.exe"
	}
	return "app"
}()

// removeUntaggedImages deletes the binaries of earlier runs that no tag points to any more (a
// newer build of the same tags replaced them). An app running one keeps running: its process
// holds the file open, as a container holds its image.
func (s *Service) removeUntaggedImages(key string) {
	s.mu.Lock()
	reg, ok := s.st.Registries[key]
	used := map[string]bool{}
	if ok {
		for _, img := range reg.Images {
			used[filepath.Base(filepath.Dir(img.Path))] = true
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	entries, _ := os.ReadDir(filepath.Join(s.workDir, "images", key))
	for _, e := range entries {
		if !used[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.workDir, "images", key, e.Name())); err != nil {
				s.log.Warn("removing an untagged image failed", "registry", key, "run_id", e.Name(), "err", err)
			}
		}
	}
}

// build does the work of one run and returns the image's digest.
func (s *Service) build(ctx context.Context, log *runLog, contextTarGz io.Reader, dockerfilePath string, outDir string, refs []Image) (string, error) {
	log.printf("Downloading source code...")
	// Outside WorkDir, which may sit in a Go module: a context without its own go.mod must fail
	// as it would in a container, not find a go.mod in a parent folder.
	tmp, err := os.MkdirTemp("", "localcloud-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := extract(contextTarGz, tmp, maxContextBytes); err != nil {
		return "", fmt.Errorf("the build context was refused: %w", err)
	}
	log.printf("Finished downloading source code")

	if dockerfilePath == "" {
		dockerfilePath = "Dockerfile"
	}
	df, err := readInContext(tmp, dockerfilePath)
	if err != nil {
		return "", err
	}
	plan, err := parseDockerfile(string(df), log)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dockerfilePath, err)
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH: the local build service runs the Dockerfile's go build with this machine's Go")
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, imageFile)
	args := slices.Concat([]string{"build"}, plan.flags, []string{"-o", out}, plan.packages)
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = filepath.Join(tmp, filepath.FromSlash(plan.dir))
	cmd.Env = append(buildHostEnv(), plan.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.WaitDelay = 5 * time.Second
	if len(plan.ignored) > 0 {
		log.printf(" ---> %s ignored: the image runs natively on this machine", strings.Join(plan.ignored, ", "))
	}
	where := "./" + plan.dir
	if plan.dir == "." {
		where = "./"
	}
	log.printf(" ---> running natively in %s: %s", where, strings.Join(slices.Concat(plan.env, []string{"go", "build"}, plan.flags, plan.packages), " "))
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("the build was canceled: %w", ctx.Err())
		}
		return "", fmt.Errorf("failed during run, err: go build: %w", err)
	}

	digest, err := fileDigest(out)
	if err != nil {
		return "", err
	}
	log.printf("Successfully built the image (the go build output; the other steps need no container here)")
	for _, ref := range refs {
		log.printf("Successfully tagged %s", ref)
	}
	for _, ref := range refs {
		log.printf("- image:\n    registry: %s\n    repository: %s\n    tag: %s\n    digest: %s", ref.Registry, ref.Repository, ref.Tag, digest)
	}
	return digest, nil
}

// readInContext reads a file of the extracted context without following links out of it.
func readInContext(dir, name string) ([]byte, error) {
	p := filepath.FromSlash(name)
	if !filepath.IsLocal(p) {
		return nil, fmt.Errorf("the Dockerfile path %q must be relative to the build context", name)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	b, err := root.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the Dockerfile %s in the build context (is --file relative to the context folder?): %w", name, err)
	}
	return b, nil
}

// buildHostEnv is this machine's environment for go build, without what would make the binary
// unable to run here (GOOS, GOARCH) or make it depend on folders outside the context (GOWORK,
// GOFLAGS). The container's own ENV values are added by the caller.
func buildHostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "GOOS", "GOARCH", "GOWORK", "GOFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off")
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Run looks a build run up.
func (s *Service) Run(registry, runID string) (Run, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg, ok := s.st.Registries[strings.ToLower(registry)]
	if !ok {
		return Run{}, false
	}
	for _, r := range reg.Runs {
		if strings.EqualFold(r.RunID, runID) {
			r.Images = slices.Clone(r.Images)
			return r, true
		}
	}
	return Run{}, false
}

// Images lists a registry's tags as full references, sorted (az acr repository show-tags).
func (s *Service) Images(registry string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg, ok := s.st.Registries[strings.ToLower(registry)]
	if !ok {
		return nil
	}
	var out []string
	for _, repoTag := range slices.Sorted(maps.Keys(reg.Images)) {
		out = append(out, reg.LoginServer+"/"+repoTag)
	}
	return out
}

// runLog collects a run's log, timestamped like ACR's, keeping the last maxRunLog bytes.
type runLog struct {
	now func() time.Time
	b   []byte
}

// Write takes go build's output; exec.Cmd calls it from one goroutine at a time because
// Stdout and Stderr are the same writer.
func (l *runLog) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > maxRunLog {
		l.b = append([]byte("[… earlier output dropped]\n"), l.b[len(l.b)-maxRunLog*3/4:]...)
	}
	return len(p), nil
}

func (l *runLog) printf(format string, args ...any) {
	fmt.Fprintf(l, "%s %s\n", l.now().UTC().Format("2006/01/02 15:04:05"), fmt.Sprintf(format, args...))
}

func (l *runLog) String() string { return string(l.b) }
