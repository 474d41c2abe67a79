package deploy

// Helpers for the tests: reading the Bicep file and the scripts as text, a stand-in az that
// records what deploy.sh and cleanup.sh ask of it, and running the real azlocal against a
// local cloud.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAzLogEnv switches the test binary into a stand-in for az (see fakeAz): TestMain reads it
// before any test runs. The value is the file where each call is recorded.
const fakeAzLogEnv = "DEPLOY_TEST_FAKE_AZ_LOG"

// buildDir holds azlocal, built once for every test; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	if log := os.Getenv(fakeAzLogEnv); log != "" {
		os.Exit(fakeAz(log, os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// readFile returns a file of this folder as text.
func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --- Bicep, read as text ---

type bicepResource struct {
	Symbol, Type, APIVersion, Body string
}

var bicepResourceRE = regexp.MustCompile(`(?m)^resource (\w+) '([^'@]+)@([^']+)' = \{`)

// bicepResources returns every top-level `resource name 'Type@version' = { ... }` block.
// Braces inside Bicep strings come in pairs (${...}), so counting them finds the block's end.
func bicepResources(t *testing.T, src string) []bicepResource {
	t.Helper()
	var out []bicepResource
	for _, m := range bicepResourceRE.FindAllStringSubmatchIndex(src, -1) {
		open := m[1] - 1
		depth, end := 0, -1
		for i := open; i < len(src) && end < 0; i++ {
			switch src[i] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			t.Fatalf("resource %s has no closing brace", src[m[2]:m[3]])
		}
		out = append(out, bicepResource{Symbol: src[m[2]:m[3]], Type: src[m[4]:m[5]], APIVersion: src[m[6]:m[7]], Body: src[open : end+1]})
	}
	return out
}

// bicepVars returns the file's string variables: var name = 'value'.
func bicepVars(src string) map[string]string {
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^var (\w+) = '([^']*)'`).FindAllStringSubmatch(src, -1) {
		vars[m[1]] = m[2]
	}
	return vars
}

// only returns the one resource of a type.
func only(t *testing.T, rs []bicepResource, typ string) bicepResource {
	t.Helper()
	var found []bicepResource
	for _, r := range rs {
		if r.Type == typ {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("main.bicep has %d resources of type %s, want 1", len(found), typ)
	}
	return found[0]
}

// bicepAppSettings reads the { name: 'X' value: ... } pairs of a siteConfig.appSettings array.
func bicepAppSettings(body string) map[string]string {
	settings := map[string]string{}
	re := regexp.MustCompile(`name: '(\w+)'\s*(?://[^\n]*\n\s*)*value: ([^\n]+)`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		settings[m[1]] = strings.TrimSpace(m[2])
	}
	return settings
}

// --- Scripts, read as text ---

// scriptLines returns a script's logical lines: continuation lines joined, comment lines and
// here-document bodies (usage text) removed. Each keeps the number of its first line.
type scriptLine struct {
	N    int
	Text string
}

func scriptLines(src string) []scriptLine {
	var out []scriptLine
	heredocEnd := ""
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(src, "\n") {
		if heredocEnd != "" {
			if strings.TrimSpace(line) == heredocEnd {
				heredocEnd = ""
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if m := regexp.MustCompile(`<<-?\s*'?"?(\w+)`).FindStringSubmatch(line); m != nil {
			heredocEnd = m[1]
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		cur.WriteString(line)
		out = append(out, scriptLine{N: start, Text: cur.String()})
		cur.Reset()
	}
	return out
}

// azCall is one "$AZ" invocation in a script: its words, and the variable that takes its
// output, if any (x=$("$AZ" ...)).
type azCall struct {
	Line int
	Var  string
	Args []string
}

var (
	azCallRE   = regexp.MustCompile(`"\$AZ" `)
	azAssignRE = regexp.MustCompile(`(\w+)=\$\("\$AZ" $`)
)

func scriptAzCalls(src string) []azCall {
	var calls []azCall
	for _, l := range scriptLines(src) {
		for _, loc := range azCallRE.FindAllStringIndex(l.Text, -1) {
			rest := l.Text[loc[1]:]
			// The call ends where the shell command does.
			for _, stop := range []string{")", ";", "||", "&&", ">&2", " | "} {
				if i := strings.Index(rest, stop); i >= 0 {
					rest = rest[:i]
				}
			}
			c := azCall{Line: l.N, Args: shellWords(rest)}
			if m := azAssignRE.FindStringSubmatch(l.Text[:loc[1]]); m != nil {
				c.Var = m[1]
			}
			calls = append(calls, c)
		}
	}
	return calls
}

// shellWords splits a command line into words the way the shell would, for the simple quoting
// the scripts use: '...' and "..." (whose $variables stay as written).
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// command is the az command group and verb: the words before the first flag.
func command(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// flagValue is the word after flag, or "" when the flag is absent.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// flagValues are the words after flag, up to the next flag (az's space-separated lists).
func flagValues(args []string, flag string) []string {
	for i, a := range args {
		if a == flag {
			var out []string
			for _, v := range args[i+1:] {
				if strings.HasPrefix(v, "-") {
					break
				}
				out = append(out, v)
			}
			return out
		}
	}
	return nil
}

func callsOf(calls []azCall, cmd string) []azCall {
	var out []azCall
	for _, c := range calls {
		if command(c.Args) == cmd {
			out = append(out, c)
		}
	}
	return out
}

// producer is the call whose output the script keeps in $name.
func producer(t *testing.T, calls []azCall, ref string) azCall {
	t.Helper()
	name := strings.TrimPrefix(ref, "$")
	for _, c := range calls {
		if c.Var == name {
			return c
		}
	}
	t.Fatalf("no az call sets %s", ref)
	return azCall{}
}

// --- A stand-in az ---

// fakeAz answers what deploy.sh and cleanup.sh ask of az with made-up but well-formed values,
// and appends each call to logFile as a JSON array of its arguments. FAKE_AZ_* variables shape
// the answers: who is signed in, where the app is, where to copy the build context.
func fakeAz(logFile string, args []string) int {
	line, _ := json.Marshal(args)
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake az:", err)
		return 1
	}
	fmt.Fprintf(f, "%s\n", line)
	f.Close()

	name, group, query := flagValue(args, "--name"), flagValue(args, "--resource-group"), flagValue(args, "--query")
	arm := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/" + group + "/providers/"
	out := ""
	switch cmd := command(args); {
	case cmd == "account show" && query == "name":
		out = "Fake Subscription"
	case cmd == "account show" && query == "user.type":
		out = os.Getenv("FAKE_AZ_USER_TYPE")
	case cmd == "account show" && query == "user.name":
		out = "11111111-1111-1111-1111-111111111111"
	case cmd == "ad signed-in-user show":
		out = "caller-user-object-id"
	case cmd == "ad sp show":
		out = "caller-sp-object-id"
	case cmd == "keyvault show" && query == "id":
		out = arm + "Microsoft.KeyVault/vaults/" + name
	case cmd == "keyvault show" && query == "properties.vaultUri":
		out = "https://" + name + ".vault.azure.net/"
	case cmd == "acr show" && query == "id":
		out = arm + "Microsoft.ContainerRegistry/registries/" + name
	case cmd == "acr show" && query == "loginServer":
		out = name + ".azurecr.io"
	case cmd == "acr build":
		if dst := os.Getenv("FAKE_AZ_CONTEXT_COPY"); dst != "" {
			if err := os.CopyFS(dst, os.DirFS(args[len(args)-1])); err != nil {
				fmt.Fprintln(os.Stderr, "fake az:", err)
				return 1
			}
		}
		out = "Run ID: ca1 was successful"
	case cmd == "webapp identity assign":
		out = "principal-of-the-app"
	case cmd == "webapp show" && query == "defaultHostName":
		out = os.Getenv("FAKE_AZ_HOST")
	case cmd == "group exists":
		out = "true"
	case cmd == "keyvault list":
		out = "kv-boot-fake"
	}
	if out != "" {
		fmt.Println(out)
	}
	return 0
}

// fakeAzCalls reads back what the stand-in az was asked.
func fakeAzCalls(t *testing.T, logFile string) [][]string {
	t.Helper()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var args []string
		if err := json.Unmarshal([]byte(line), &args); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		calls = append(calls, args)
	}
	return calls
}

// runScript runs bash SCRIPT ARGS... from the repository root, as a learner would, and returns
// its standard output and error.
func runScript(t *testing.T, ctx context.Context, env []string, script string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join("04-deploy", script)}, args...)...)
	cmd.Dir = ".."
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// --- The real azlocal, on a local cloud ---

// buildAzlocal builds shared/cmd/azlocal once for every test.
var buildAzlocal = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(buildDir, "azlocal")
	out, err := exec.Command("go", "build", "-o", bin, "../shared/cmd/azlocal").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
})

// azlocalOrSkip is azlocal's path. The rehearsal needs the local cloud's ARM and Graph APIs
// and the az-compatible CLI; until shared/cmd/azlocal builds, these tests cannot run, and say
// so. Once it builds, they run, and any failure is a failure.
func azlocalOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := buildAzlocal()
	if err != nil {
		t.Skipf("the offline rehearsal needs shared/cmd/azlocal, which does not build yet: go build ../shared/cmd/azlocal: %v", err)
	}
	return bin
}

// azlocal runs azlocal with the rehearsal's environment and returns its standard output.
func azlocal(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin := azlocalOrSkip(t)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("azlocal %s: %v\n%s", strings.Join(args, " "), err, e.String())
	}
	return strings.TrimSpace(o.String()), nil
}

// mustAzlocal is azlocal that must succeed.
func mustAzlocal(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := azlocal(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
