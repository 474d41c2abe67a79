package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const registryProvider = "Microsoft.ContainerRegistry/registries"

func addACR(a *app, root *cobra.Command) {
	acr := group(root, "acr", "Manage private registries with Azure Container Registries.")
	var name, rg, sku, location string
	var adminEnabled bool
	a.add(acr, command{
		use: "create", short: "Create an Azure Container Registry.",
		required: []string{"name", "resource-group", "sku"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "The name of the container registry.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
			fs.StringVar(&sku, "sku", "", "The SKU of the container registry: Basic, Standard, Premium.")
			fs.StringVarP(&location, "location", "l", "", "Location. Defaults to the resource group's.")
			fs.BoolVar(&adminEnabled, "admin-enabled", false, "Indicates whether the admin user is enabled.")
		},
		run: func(a *app, _ *cobra.Command, _ []string) (any, error) {
			if !slices.Contains([]string{"basic", "standard", "premium"}, strings.ToLower(sku)) {
				return nil, usageError("argument --sku: invalid choice: '%s' (choose from 'Basic', 'Standard', 'Premium')", sku)
			}
			c, err := a.connect()
			if err != nil {
				return nil, err
			}
			if location == "" {
				if location, err = a.groupLocation(c, rg); err != nil {
					return nil, err
				}
			}
			body := map[string]any{
				"location":   location,
				"sku":        map[string]any{"name": strings.ToUpper(sku[:1]) + strings.ToLower(sku[1:])},
				"properties": map[string]any{"adminUserEnabled": adminEnabled},
			}
			v, err := c.arm(a.ctx, http.MethodPut, c.resourcePath(rg, registryProvider, name), apiRegistry, body)
			return flatten(v), err
		},
	})
	a.add(acr, command{
		use: "show", short: "Get the details of an Azure Container Registry.",
		required: []string{"name"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "name", "n", "", "The name of the container registry.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
		},
		run: connected(func(a *app, c *cloud) (any, error) {
			v, err := a.registry(c, name, rg)
			return flatten(v), err
		}),
	})
	var images []string
	var file, platform string
	var noLogs, noWait, noPush bool
	a.add(acr, command{
		use:   "build SOURCE_LOCATION",
		short: "Queues a quick build, providing streaming logs for an Azure Container Registry.",
		args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError("the following arguments are required: <SOURCE_LOCATION>")
			case len(args) > 1:
				return usageError("unrecognized arguments: %s", strings.Join(args[1:], " "))
			}
			return nil
		},
		required: []string{"registry"},
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&name, "registry", "r", "", "The name of the container registry.")
			fs.StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
			fs.StringArrayVarP(&images, "image", "t", nil, "The name and tag of the image using the format: '-t repo/image:tag'. Multiple tags are supported by passing -t multiple times.")
			fs.StringVarP(&file, "file", "f", "", "The relative path of the Dockerfile to the source code root folder. Default to 'Dockerfile'.")
			fs.StringVar(&platform, "platform", "linux/amd64", "The platform where build/task is run: linux/amd64 here.")
			fs.BoolVar(&noLogs, "no-logs", false, "Do not show logs after successfully queuing the build.")
			fs.BoolVar(&noWait, "no-wait", false, "Do not wait for the run to complete and return immediately after queuing the run.")
			fs.BoolVar(&noPush, "no-push", false, "Indicates whether the image built should be pushed to the registry.")
			fs.Bool("no-format", false, "Indicates whether the logs should be displayed in raw format.")
		},
		run: func(a *app, _ *cobra.Command, args []string) (any, error) {
			return a.acrBuild(name, rg, args[0], file, platform, images, noLogs, noWait, noPush)
		},
	})
}

// registry finds a registry by name, in a resource group when given.
func (a *app) registry(c *cloud, name, rg string) (any, error) {
	if rg == "" {
		return a.findResource(c, registryProvider, name, apiRegistry, "resource")
	}
	return c.arm(a.ctx, http.MethodGet, c.resourcePath(rg, registryProvider, name), apiRegistry, nil)
}

// acrBuild is az acr build with a local folder: pack it (honouring .dockerignore) with the
// Dockerfile added under a unique name, upload it to the registry's build source URL, schedule a
// DockerBuildRequest, then print the run's log and fail if the run failed.
func (a *app) acrBuild(registryName, rg, source, file, platform string, images []string, noLogs, noWait, noPush bool) (any, error) {
	st, err := os.Stat(source)
	if err != nil {
		return nil, failure("'%s' doesn't exist.", source)
	}
	if !st.IsDir() {
		return nil, failure("Source location should be a local directory path or remote URL.")
	}
	if file == "" {
		file = filepath.Join(source, "Dockerfile")
		a.info("'--file or -f' is not provided. '%s' is used.", file)
	}
	if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
		return nil, failure("Unable to find '%s'.", file)
	}
	osName, arch, ok := strings.Cut(platform, "/")
	if !ok || !strings.EqualFold(osName, "linux") {
		return nil, failure("the local cloud builds for linux only (--platform linux/amd64)")
	}
	c, err := a.connect()
	if err != nil {
		return nil, err
	}
	reg, err := a.registry(c, registryName, rg)
	if err != nil {
		return nil, err
	}
	registryPath := strings.Split(get(reg, "id"), "/providers/")[0] + "/providers/" + registryProvider + "/" + get(reg, "name")

	dockerfileInTar := strings.ReplaceAll(uuid.NewString(), "-", "") + "_" + filepath.Base(file)
	a.warn("Packing source code into tar to upload...")
	archive, err := packSource(source, file, dockerfileInTar, a.warn)
	if err != nil {
		return nil, failure("%v", err)
	}
	a.warn("Uploading archived source code from '%s'...", source)
	upload, err := c.arm(a.ctx, http.MethodPost, registryPath+"/listBuildSourceUploadUrl", apiRegistryRuns, nil)
	if err != nil {
		return nil, err
	}
	if get(upload, "uploadUrl") == "" {
		return nil, failure("Failed to get a SAS URL to upload context.")
	}
	if _, err := c.do(a.ctx, request{
		method: http.MethodPut, url: get(upload, "uploadUrl"), body: bytes.NewReader(archive),
		header: http.Header{"X-Ms-Blob-Type": {"BlockBlob"}, "Content-Type": {"application/octet-stream"}},
	}); err != nil {
		return nil, err
	}
	a.warn("Sending context (%s) to registry: %s...", humanSize(len(archive)), registryName)

	if len(images) == 0 && !noPush {
		a.warn("'--image or -t' is not provided. Skipping image push after build.")
	}
	runRequest := map[string]any{
		"type":           "DockerBuildRequest",
		"imageNames":     orEmpty(toAny(images)),
		"isPushEnabled":  len(images) > 0 && !noPush,
		"sourceLocation": get(upload, "relativePath"),
		"dockerFilePath": dockerfileInTar,
		"platform":       map[string]any{"os": "Linux", "architecture": arch},
		"arguments":      []any{},
	}
	queued, err := c.arm(a.ctx, http.MethodPost, registryPath+"/scheduleRun", apiRegistryRuns, runRequest)
	if err != nil {
		return nil, err
	}
	runID := cmp.Or(get(queued, "properties", "runId"), get(queued, "name"))
	a.warn("Queued a build with ID: %s", runID)
	if noWait {
		return flatten(queued), nil
	}
	a.warn("Waiting for an agent...")
	runPath := registryPath + "/runs/" + runID
	run, err := a.waitForRun(c, runPath)
	if err != nil {
		return nil, err
	}
	if noLogs {
		return flatten(run), nil
	}
	logs, err := c.arm(a.ctx, http.MethodPost, runPath+"/listLogSasUrl", apiRegistryRuns, nil)
	if err != nil {
		return nil, failure("Could not get logs for ID: %s", runID)
	}
	text, err := c.do(a.ctx, request{method: http.MethodGet, url: get(logs, "logLink")})
	if err != nil {
		return nil, failure("Could not get logs for ID: %s", runID)
	}
	// az prints the streamed log, as the registry wrote it, to stdout.
	a.io.out.Write(text)
	if len(text) > 0 && text[len(text)-1] != '\n' {
		fmt.Fprintln(a.io.out)
	}
	switch strings.ToLower(get(run, "properties", "status")) {
	case "failed", "internalerror":
		return nil, failure("Run failed")
	case "timedout":
		return nil, failure("Run timed out")
	case "canceled":
		return nil, failure("Run was canceled")
	}
	return nil, nil
}

// waitForRun polls a run until it ends (the local cloud's runs end before scheduleRun answers).
func (a *app) waitForRun(c *cloud, runPath string) (any, error) {
	for {
		run, err := c.arm(a.ctx, http.MethodGet, runPath, apiRegistryRuns, nil)
		if err != nil {
			return nil, err
		}
		switch strings.ToLower(get(run, "properties", "status")) {
		case "queued", "started", "running":
		default:
			return run, nil
		}
		select {
		case <-a.ctx.Done():
			return nil, a.ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// humanSize is az's "{0:.3f} {1}" size of the uploaded context.
func humanSize(n int) string {
	size := float64(n)
	for _, unit := range []string{"Bytes", "KiB", "MiB"} {
		if size < 1024 {
			return fmt.Sprintf("%.3f %s", size, unit)
		}
		size /= 1024
	}
	return fmt.Sprintf("%.3f GiB", size)
}

// ignoreRule is one .dockerignore line, compiled as az compiles it.
type ignoreRule struct {
	pattern *regexp.Regexp
	ignore  bool
}

// loadDockerignore reads SOURCE/.dockerignore (or SOURCE/<Dockerfile name>.dockerignore for
// a Dockerfile not named Dockerfile): later lines take precedence, so they come first.
func loadDockerignore(source, dockerfileName string, warn func(string, ...any)) ([]ignoreRule, bool, error) {
	file := filepath.Join(source, ".dockerignore")
	var rules []ignoreRule
	if dockerfileName != "Dockerfile" {
		override := filepath.Join(source, dockerfileName+".dockerignore")
		if _, err := os.Stat(override); err == nil {
			warn("Overriding .dockerignore with %s", override)
			file = override
			r, _ := compileIgnore(".dockerignore")
			rules = append(rules, r)
		}
	}
	raw, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	text := strings.TrimPrefix(string(raw), "\ufeff")
	for _, line := range strings.Split(text, "\n") {
		rule := strings.TrimRight(line, " \t\r")
		if rule == "" || strings.HasPrefix(rule, "#") {
			continue
		}
		r, err := compileIgnore(rule)
		if err != nil {
			return nil, false, fmt.Errorf("%s: rule %q: %v", file, rule, err)
		}
		rules = append([]ignoreRule{r}, rules...)
	}
	return rules, true, nil
}

func compileIgnore(rule string) (ignoreRule, error) {
	r := ignoreRule{ignore: true}
	if rest, ok := strings.CutPrefix(rule, "!"); ok {
		r.ignore = false
		rule = strings.TrimRight(strings.TrimPrefix(rest, "/"), "/")
	}
	var b strings.Builder
	b.WriteString("^")
	tokens := strings.Split(rule, "/")
	for i, tok := range tokens {
		if tok == "**" {
			b.WriteString(".*")
		} else {
			tok = strings.ReplaceAll(tok, "*", "[^/]*")
			tok = strings.ReplaceAll(tok, "?", "[^/]")
			tok = strings.ReplaceAll(tok, ".", `\.`)
			b.WriteString(tok)
			if i < len(tokens)-1 {
				b.WriteString("/")
			}
		}
	}
	b.WriteString("$")
	var err error
	r.pattern, err = regexp.Compile(b.String())
	return r, err
}

// vcsIgnored are excluded from every build context, as az excludes them.
var vcsIgnored = []string{".git", ".gitignore", ".bzr", "bzrignore", ".hg", ".hgignore", ".svn"}

// packSource is az's _pack_source_code: a gzipped tar of source, each entry included or not by
// the highest-priority .dockerignore rule that matches it, else as its parent folder was; and the
// Dockerfile added at the root as dockerfileInTar.
func packSource(source, dockerfile, dockerfileInTar string, warn func(string, ...any)) ([]byte, error) {
	rules, haveRules, err := loadDockerignore(source, filepath.Base(dockerfile), warn)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)

	type state struct {
		ignored bool
		rule    int // rules at this index or later cannot override the parent's decision
	}
	states := map[string]state{".": {ignored: false, rule: len(rules)}}
	err = filepath.WalkDir(source, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(source, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		parent := states[path.Dir(name)]
		st := parent
		switch {
		case slices.Contains(vcsIgnored, name):
			warn("Excluding '%s' based on default ignore rules", name)
			st.ignored = true
		case haveRules:
			for i, r := range rules[:parent.rule] {
				if r.pattern.MatchString(name) {
					st = state{ignored: r.ignore, rule: i}
					break
				}
			}
		}
		if d.IsDir() {
			states[name] = st
		}
		if st.ignored {
			return nil // a child can still be included by a later rule
		}
		return addToTar(tw, p, name)
	})
	if err != nil {
		return nil, err
	}
	if err := addToTar(tw, dockerfile, dockerfileInTar); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addToTar(tw *tar.Writer, file, name string) error {
	info, err := os.Lstat(file)
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(file); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
