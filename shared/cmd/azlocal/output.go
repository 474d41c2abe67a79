package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
)

// Results are plain JSON values: map[string]any, []any, string, float64, bool and nil, as
// encoding/json decodes them. A command that prints nothing returns nil, and so does a query
// whose answer is null: az prints nothing for either.

// print applies az's result transforms, --query and --output to a command's result.
func (a *app) print(result any, table func(any) (any, []string)) error {
	if result == nil {
		return nil
	}
	result = normalize(result)
	addResourceGroup(result)
	var order keyOrder
	if a.output == "table" && a.query == "" && table != nil {
		var columns []string
		result, columns = table(result)
		order = keyOrder{columns}
	} else if a.query != "" {
		q, err := compileQuery(a.query)
		if err != nil {
			return usageError("argument --query: invalid jmespath_type value: '%s'", a.query)
		}
		if result, err = q.search(result); err != nil {
			return failure("%v", err)
		}
		if result == nil {
			return nil
		}
		order = q.order
	}
	out, err := format(result, a.output, order)
	if err != nil {
		return err
	}
	_, err = a.io.out.Write(out)
	return err
}

// normalize turns a result built from Go values (structs, typed maps and slices) into plain
// JSON values, so that queries and formatters see what az's would.
func normalize(v any) any {
	switch v.(type) {
	case map[string]any, []any, string, float64, bool, nil:
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				m[k] = normalize(x)
			}
		}
		if l, ok := v.([]any); ok {
			for i, x := range l {
				l[i] = normalize(x)
			}
		}
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("azlocal: result is not JSON: %v", err)) // a programming error
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("azlocal: result is not JSON: %v", err))
	}
	return out
}

// addResourceGroup adds "resourceGroup" to every object whose id names a resource in a
// resource group, as az does for every command's result.
func addResourceGroup(v any) {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			addResourceGroup(x)
		}
	case map[string]any:
		if _, ok := v["resourceGroup"]; !ok {
			if id, ok := v["id"].(string); ok {
				parts := strings.Split(id, "/")
				if len(parts) > 8 && strings.EqualFold(parts[3], "resourcegroups") {
					v["resourceGroup"] = parts[4]
				}
			}
		}
		for _, x := range v {
			addResourceGroup(x)
		}
	}
}

// query is a compiled --query with the key order of its multi-select hashes: az keeps
// {b:x, a:y} in that order for tsv and table.
type query struct {
	jp    jmespath.JMESPath
	order keyOrder
}

func compileQuery(expr string) (*query, error) {
	jp, err := jmespath.Compile(expr)
	if err != nil {
		return nil, err
	}
	ast, err := jmespath.NewParser().Parse(expr)
	if err != nil {
		return nil, err
	}
	q := &query{jp: jp}
	var walk func(n parsing.ASTNode)
	walk = func(n parsing.ASTNode) {
		if n.NodeType == parsing.ASTMultiSelectHash {
			var keys []string
			for _, kv := range n.Children {
				if k, ok := kv.Value.(string); ok {
					keys = append(keys, k)
				}
			}
			q.order = append(q.order, keys)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(ast)
	return q, nil
}

func (q *query) search(v any) (any, error) {
	out, err := q.jp.Search(v)
	if err != nil {
		return nil, err
	}
	return normalize(out), nil
}

// keyOrder lists the key orders a query's multi-select hashes create.
type keyOrder [][]string

// keys returns m's keys: in the order of the multi-select hash that made m, else sorted.
func (o keyOrder) keys(m map[string]any) []string {
	for _, keys := range o {
		if len(keys) == len(m) && !slices.ContainsFunc(keys, func(k string) bool { _, ok := m[k]; return !ok }) {
			return keys
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// format renders a result in one of az's output formats.
func format(v any, output string, order keyOrder) ([]byte, error) {
	switch output {
	case "none":
		return nil, nil
	case "tsv":
		return formatTSV(v, order), nil
	case "table":
		return formatTable(v, order)
	}
	return formatJSON(v), nil
}

// formatJSON is Python's json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False).
func formatJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("azlocal: result is not JSON: %v", err)) // normalize made it JSON
	}
	return buf.Bytes()
}

// formatTSV is knack's tsv output: one row per item of a list (or the one object), the values
// of an object tab-separated; nested lists print their length, nested objects nothing.
func formatTSV(v any, order keyOrder) []byte {
	rows, ok := v.([]any)
	if !ok {
		rows = []any{v}
	}
	var b strings.Builder
	for _, row := range rows {
		switch row := row.(type) {
		case map[string]any:
			for i, k := range order.keys(row) {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvCell(row[k]))
			}
		case []any:
			for i, x := range row {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(tsvCell(x))
			}
		case bool:
			b.WriteString(strconv.FormatBool(row))
		default:
			b.WriteString(tsvCell(row))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func tsvCell(v any) string {
	switch v := v.(type) {
	case []any:
		return strconv.Itoa(len(v))
	case map[string]any:
		return ""
	}
	return pyStr(v)
}

// pyStr is Python's str() of a JSON value, which tsv and table print.
func pyStr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return v
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return string(bytes.TrimSpace(formatJSON(v)))
}

// formatTable is knack's table output: tabulate's "simple" format of the scalar fields of each
// object (not id, type or etag), headers capitalised, columns at least two wider than their header.
func formatTable(v any, order keyOrder) ([]byte, error) {
	rows, ok := v.([]any)
	if !ok {
		rows = []any{v}
	}
	var headers []string
	cells := make([]map[string]string, len(rows))
	for i, row := range rows {
		cells[i] = map[string]string{}
		var keys []string
		var values []any
		switch row := row.(type) {
		case map[string]any:
			for _, k := range order.keys(row) {
				x := row[k]
				if k == "id" || k == "type" || k == "etag" || x == nil {
					continue
				}
				if _, nested := x.(map[string]any); nested {
					continue
				}
				if _, nested := x.([]any); nested {
					continue
				}
				keys = append(keys, strings.ToUpper(k[:1])+k[1:])
				values = append(values, x)
			}
		case []any:
			for j, x := range row {
				keys = append(keys, fmt.Sprintf("Column%d", j+1))
				values = append(values, x)
			}
		default:
			keys, values = []string{"Result"}, []any{row}
		}
		for j, k := range keys {
			if !slices.Contains(headers, k) {
				headers = append(headers, k)
			}
			cells[i][k] = pyStr(values[j])
		}
	}
	if len(rows) == 0 {
		return []byte("\n"), nil
	}
	if len(headers) == 0 {
		return nil, failure("Table output unavailable. Use the --query option to specify an appropriate query. Use --debug for more info.")
	}
	widths := make([]int, len(headers))
	for j, h := range headers {
		widths[j] = utf8.RuneCountInString(h) + 2
		for _, c := range cells {
			widths[j] = max(widths[j], utf8.RuneCountInString(c[h]))
		}
	}
	var b strings.Builder
	line := func(vals func(j int) string) {
		var l strings.Builder
		for j := range headers {
			if j > 0 {
				l.WriteString("  ")
			}
			s := vals(j)
			l.WriteString(s + strings.Repeat(" ", widths[j]-utf8.RuneCountInString(s)))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(func(j int) string { return headers[j] })
	line(func(j int) string { return strings.Repeat("-", widths[j]) })
	for _, c := range cells {
		line(func(j int) string { return c[headers[j]] })
	}
	return []byte(b.String()), nil
}
