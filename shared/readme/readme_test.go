package readme

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// root is the repository root, two folders up from this package.
const root = "../.."

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testFuncs finds every Test function in the repository's test files, by name.
func testFuncs(t *testing.T) map[string]string {
	t.Helper()
	found := map[string]string{}
	decl := regexp.MustCompile(`(?m)^func (Test\w+)\(`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			found[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

var testName = regexp.MustCompile("`(Test[A-Z][A-Za-z0-9_]*)`")

// TestEveryTestAREADMENamesExists keeps the claim tables honest: a reader who runs the named
// test must find it.
func TestEveryTestAREADMENamesExists(t *testing.T) {
	funcs := testFuncs(t)
	readmes, err := filepath.Glob(filepath.Join(root, "*", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readmes = append(readmes, filepath.Join(root, "README.md"))
	named := 0
	for _, p := range readmes {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testName.FindAllStringSubmatch(string(b), -1) {
			named++
			if _, ok := funcs[m[1]]; !ok {
				t.Errorf("%s names %s, but no test has that name", p, m[1])
			}
		}
	}
	if named < 20 {
		t.Fatalf("found only %d test names in the READMEs: is the claims table still there?", named)
	}
}

// TestEveryClaimHasAProofInTheREADME checks the claims table has one row for each of C1-C14,
// each naming at least one test.
func TestEveryClaimHasAProofInTheREADME(t *testing.T) {
	rows := map[string]string{}
	for _, line := range strings.Split(read(t, "README.md"), "\n") {
		if m := regexp.MustCompile(`^\| (C\d+) \|`).FindStringSubmatch(line); m != nil {
			if _, dup := rows[m[1]]; dup {
				t.Errorf("claim %s has two rows", m[1])
			}
			rows[m[1]] = line
		}
	}
	for i := 1; i <= 14; i++ {
		c := fmt.Sprintf("C%d", i)
		row, ok := rows[c]
		if !ok {
			t.Errorf("the claims table has no row for %s", c)
			continue
		}
		if !testName.MatchString(row) {
			t.Errorf("claim %s names no test: %s", c, row)
		}
	}
}

// TestREADMEShowsTheWellKnownValuesTheCodeHas: the published local values are the ones the
// local cloud seeds, so copying them from the README works.
func TestREADMEShowsTheWellKnownValuesTheCodeHas(t *testing.T) {
	readme := read(t, "README.md")
	for name, v := range map[string]string{
		"TenantID": localcloud.TenantID, "SubscriptionID": localcloud.SubscriptionID,
		"ResourceGroup": localcloud.ResourceGroup, "VaultURL": localcloud.VaultURL,
		"SecretName": localcloud.SecretName, "SecretValue": localcloud.SecretValue,
		"Step01ClientID": localcloud.Step01ClientID, "Step01ClientSecret": localcloud.Step01ClientSecret,
		"DeveloperClientID": localcloud.DeveloperClientID, "DeveloperClientSecret": localcloud.DeveloperClientSecret,
	} {
		if !strings.Contains(readme, "`"+v+"`") {
			t.Errorf("README.md does not show localcloud.%s = %s", name, v)
		}
	}
	for _, cmd := range []string{"go run ./01-bootstrapping-problem", "go test ./..."} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md lost the setup command %q", cmd)
		}
	}
}

// TestREADMEShowsTheEnvironmentTheLocalCloudWrites compares the variables of the README's
// `go run ./shared/cmd/localcloud` transcript with what the local cloud hands out.
func TestREADMEShowsTheEnvironmentTheLocalCloudWrites(t *testing.T) {
	c, err := localcloud.Start(context.Background(), localcloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readme := read(t, "README.md")
	start := strings.Index(readme, "$ go run ./shared/cmd/localcloud\n")
	if start < 0 {
		t.Fatal("README.md has no transcript of go run ./shared/cmd/localcloud")
	}
	transcript := readme[start : start+strings.Index(readme[start:], "```")]
	for _, kv := range append(c.Env(), c.DeveloperEnv()...) {
		key, value, _ := strings.Cut(kv, "=")
		if !strings.Contains(transcript, "\n"+key+"=") {
			t.Errorf("the transcript does not show %s", key)
		}
		if strings.HasPrefix(key, "AZURE_") && !strings.Contains(transcript, kv) {
			t.Errorf("the transcript shows another value for %s than %s", key, value)
		}
	}
	if !strings.Contains(transcript, "ready") {
		t.Error("the transcript does not end with the ready line")
	}
}

// TestStepDiffsInTheREADMEsMatchTheCode checks each ```diff block of a step's README against
// the code: an added line must be in this step's main.go, a removed line in the previous
// step's, and a context line in both. A README that shows stale code fails here.
func TestStepDiffsInTheREADMEsMatchTheCode(t *testing.T) {
	steps := []string{"01-bootstrapping-problem", "02-app-registration", "03-managed-identity"}
	lines := func(step string) map[string]bool {
		set := map[string]bool{}
		for _, l := range strings.Split(read(t, filepath.Join(step, "main.go")), "\n") {
			set[strings.TrimRight(l, " \t")] = true
		}
		return set
	}
	checked := 0
	for i := 1; i < len(steps); i++ {
		prev, this := lines(steps[i-1]), lines(steps[i])
		readme := read(t, filepath.Join(steps[i], "README.md"))
		for _, block := range regexp.MustCompile("(?s)```diff\n(.*?)```").FindAllStringSubmatch(readme, -1) {
			for _, l := range strings.Split(strings.TrimRight(block[1], "\n"), "\n") {
				if l == "" || strings.HasPrefix(l, "@@") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "+++") || strings.TrimSpace(l) == "..." {
					continue
				}
				code := strings.TrimRight(l[1:], " \t")
				var ok bool
				switch l[0] {
				case '+':
					ok = this[code]
				case '-':
					ok = prev[code]
				default:
					ok = this[code] && prev[code]
				}
				checked++
				if !ok {
					t.Errorf("%s/README.md shows %q, which is not what %s/main.go has", steps[i], l, steps[i])
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no diff blocks found in the step READMEs")
	}
}
