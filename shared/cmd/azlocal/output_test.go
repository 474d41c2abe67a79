package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// printed runs a result through --query and --output as a command's result would be.
func printed(t *testing.T, result any, query, output string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	a := &app{ctx: context.Background(), io: stdio{out: &out, err: &bytes.Buffer{}}, query: query, output: output}
	err := a.print(result, nil)
	return out.String(), err
}

const vaultJSON = `{"id": "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1", "name": "kv1",
	"type": "Microsoft.KeyVault/vaults", "location": "westeurope",
	"properties": {"vaultUri": "https://kv1.vault.azure.net/", "enableRbacAuthorization": true, "softDeleteRetentionInDays": 90,
	"note": "<a&b>"}}`

func TestJSONIsAzsFormat(t *testing.T) {
	got, err := printed(t, decode(t, vaultJSON), "", "json")
	if err != nil {
		t.Fatal(err)
	}
	// Sorted keys, 2-space indent, no HTML escaping, integers as integers, and az's resourceGroup.
	want := `{
  "id": "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1",
  "location": "westeurope",
  "name": "kv1",
  "properties": {
    "enableRbacAuthorization": true,
    "note": "<a&b>",
    "softDeleteRetentionInDays": 90,
    "vaultUri": "https://kv1.vault.azure.net/"
  },
  "resourceGroup": "rg1",
  "type": "Microsoft.KeyVault/vaults"
}
`
	if got != want {
		t.Errorf("json output:\n%s\nwant:\n%s", got, want)
	}
}

func TestResourceGroupIsAddedOnlyToResourcesInAGroup(t *testing.T) {
	v := decode(t, `[{"id": "/subscriptions/s/resourceGroups/rg1", "name": "rg1"},
		{"id": "/subscriptions/s/resourceGroups/rg1/providers/P/t/n/providers/Microsoft.Authorization/roleAssignments/g"},
		{"id": "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/g"}]`)
	addResourceGroup(v)
	rows := v.([]any)
	if _, ok := rows[0].(map[string]any)["resourceGroup"]; ok {
		t.Error("a resource group itself got a resourceGroup field; az adds it only to resources in a group")
	}
	if got := rows[1].(map[string]any)["resourceGroup"]; got != "rg1" {
		t.Errorf("resourceGroup = %v, want rg1", got)
	}
	if _, ok := rows[2].(map[string]any)["resourceGroup"]; ok {
		t.Error("a subscription-level resource got a resourceGroup field")
	}
}

func TestQueries(t *testing.T) {
	vaults := decode(t, "["+vaultJSON+`, {"id": "/subscriptions/s/resourceGroups/rg2/providers/Microsoft.KeyVault/vaults/kv2", "name": "kv2"}]`)
	for _, tc := range []struct{ query, output, want string }{
		{"[0].id", "tsv", "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1\n"},
		{"[0].properties.vaultUri", "tsv", "https://kv1.vault.azure.net/\n"},
		{"[0].properties.vaultUri", "json", "\"https://kv1.vault.azure.net/\"\n"},
		{"length(@)", "json", "2\n"},
		{"length(@)", "tsv", "2\n"},
		{"[].name", "tsv", "kv1\nkv2\n"},
		{"[].name", "json", "[\n  \"kv1\",\n  \"kv2\"\n]\n"},
		{"[0].properties.enableRbacAuthorization", "tsv", "true\n"},
		{"[0].properties.enableRbacAuthorization", "json", "true\n"},
		{"[?name=='kv2'].resourceGroup | [0]", "tsv", "rg2\n"},
		// A multi-select hash keeps its order in tsv, as az's OrderedDict does.
		{"[].{n:name, g:resourceGroup}", "tsv", "kv1\trg1\nkv2\trg2\n"},
		{"[].{z:name, a:resourceGroup}", "tsv", "kv1\trg1\nkv2\trg2\n"},
		// null prints nothing at all.
		{"[0].missing", "json", ""},
		{"[0].missing", "tsv", ""},
	} {
		got, err := printed(t, normalize(vaults), tc.query, tc.output)
		if err != nil {
			t.Errorf("--query %q -o %s: %v", tc.query, tc.output, err)
			continue
		}
		if got != tc.want {
			t.Errorf("--query %q -o %s = %q, want %q", tc.query, tc.output, got, tc.want)
		}
	}
}

func TestTSV(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// An object's values in key order; nested lists print their length, objects nothing,
		// null None, and booleans inside a row Python's True/False.
		{`{"b": "x", "a": 1, "c": [1, 2, 3], "d": {"k": "v"}, "e": null, "f": true}`, "1\tx\t3\t\tNone\tTrue\n"},
		{`[{"name": "a", "n": 1}, {"name": "b", "n": 2}]`, "1\ta\n2\tb\n"},
		{`[["a", "b"], ["c", "d"]]`, "a\tb\nc\td\n"},
		{`"plain"`, "plain\n"},
		{`false`, "false\n"},
		{`[]`, ""},
		{`1.5`, "1.5\n"},
	} {
		got := string(formatTSV(decode(t, tc.in), nil))
		if got != tc.want {
			t.Errorf("tsv of %s = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTable(t *testing.T) {
	in := decode(t, `[{"name": "rg-one", "location": "westeurope", "id": "/x", "type": "t", "tags": {"a": "b"}, "managedBy": null, "n": 3},
		{"name": "rg2", "location": "eastus", "id": "/y", "n": 12}]`)
	got, err := formatTable(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	// tabulate's simple format: columns at least two wider than their header, sorted keys,
	// without id, type, nested values and nulls; trailing spaces trimmed.
	want := strings.Join([]string{
		"Location    N    Name",
		"----------  ---  ------",
		"westeurope  3    rg-one",
		"eastus      12   rg2",
		"",
	}, "\n")
	if string(got) != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	got, err = formatTable(decode(t, `["a", "bb"]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Result\n--------\na\nbb\n"; string(got) != want {
		t.Errorf("table of strings:\n%q\nwant:\n%q", got, want)
	}
	if _, err := formatTable(decode(t, `[{"id": "x"}]`), nil); err == nil {
		t.Error("a table with no columns did not fail as az's does")
	}
}

func TestOutputNoneAndNoResult(t *testing.T) {
	for _, tc := range []struct {
		result any
		output string
	}{{decode(t, vaultJSON), "none"}, {nil, "json"}, {nil, "tsv"}} {
		got, err := printed(t, tc.result, "", tc.output)
		if err != nil || got != "" {
			t.Errorf("-o %s of %v printed %q, %v; want nothing", tc.output, tc.result, got, err)
		}
	}
}

func TestNormalizeTurnsGoValuesIntoJSONValues(t *testing.T) {
	type s struct {
		A []string `json:"a"`
	}
	got, err := printed(t, map[string]any{"x": s{A: []string{"1"}}, "n": 2}, "x.a[0]", "tsv")
	if err != nil || got != "1\n" {
		t.Errorf("query over Go values = %q, %v", got, err)
	}
}
