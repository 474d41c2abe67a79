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
