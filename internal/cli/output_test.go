package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// renderDoc runs a JSON document through --query (if any) and one output format, as App.Print does.
func renderDoc(t *testing.T, doc, expr, format string, transform func(any) any) (string, bool) {
	t.Helper()
	d, err := decodeDocument([]byte(doc))
	if err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	v := d.root
	var hashes [][]string
	if expr != "" {
		q, err := compileQuery(expr)
		if err != nil {
			t.Fatal(err)
		}
		if v, err = q.search(v); err != nil {
			t.Fatal(err)
		}
		hashes = q.hashes
	}
	if v == nil {
		return "", false
	}
	out, err := render(d.node(v, hashes), renderSettings{format: format, queryActive: expr != "", color: true, transform: transform})
	if err != nil {
		t.Fatalf("render %s: %v", format, err)
	}
	return out, true
}

// TestFormatsMatchAz compares json, jsonc, yaml and tsv output with testdata/az_formats.json.
// Its expected outputs were produced by the Python libraries az uses, running knack's formatter
// logic: json.dumps(indent=2, sort_keys=True, ensure_ascii=False), yaml.safe_dump
// (default_flow_style=False; PyYAML 6.0.3), pygments 2.20's TerminalFormatter over the JSON
// lexer, knack's _TsvOutput, and jmespath.search with OrderedDict for the queries. A null
// expected output means az prints nothing.
func TestFormatsMatchAz(t *testing.T) {
	data, err := os.ReadFile("testdata/az_formats.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Name, Doc, Query       string
		JSON, JSONC, YAML, TSV *string
	}
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 40 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			for _, f := range []struct {
				format string
				want   *string
			}{{"json", v.JSON}, {"jsonc", v.JSONC}, {"yaml", v.YAML}, {"tsv", v.TSV}} {
				got, printed := renderDoc(t, v.Doc, v.Query, f.format, nil)
				switch {
				case f.want == nil && printed:
					t.Errorf("%s: printed %q, az prints nothing", f.format, got)
				case f.want != nil && got != *f.want:
					t.Errorf("%s:\ngot  %q\nwant %q", f.format, got, *f.want)
				}
			}
		})
	}
}

const sampleGroups = `[
 {"name":"rg1","id":"/subscriptions/s/resourceGroups/rg1","type":"Microsoft.Resources/resourceGroups","location":"eastus",
  "tags":{"env":"dev"},"managedBy":null,"properties":{"provisioningState":"Succeeded"},"count":3,"ratio":0.5,"enabled":true},
 {"name":"rg2","id":"/subscriptions/s/resourceGroups/rg2","type":"Microsoft.Resources/resourceGroups","location":"westus",
  "tags":{},"managedBy":"someone","properties":{"provisioningState":"Deleting"},"count":12,"ratio":1e-7,"enabled":false}
]`

func TestTableOutput(t *testing.T) {
	for _, tc := range []struct {
		name, doc, query string
		transform        func(any) any
		want             string
	}{
		{
			name: "list: sorted scalar keys, id/type/None/nested dropped, header width + 2",
			doc:  sampleGroups,
			// tabulate's columns: keys in order of first appearance across rows.
			want: "Count    Enabled    Location    Name    Ratio    ManagedBy\n" +
				"-------  ---------  ----------  ------  -------  -----------\n" +
				"3        True       eastus      rg1     0.5\n" +
				"12       False      westus      rg2     1e-07    someone\n",
		},
		{
			name: "single object",
			doc:  `{"name":"x","location":"eastus","id":"i","etag":"e","tags":null}`,
			want: "Location    Name\n----------  ------\neastus      x\n",
		},
		{
			name:  "query keeps the multiselect order",
			doc:   sampleGroups,
			query: "[].{Name:name, State:properties.provisioningState, Where:location}",
			want: "Name    State      Where\n" +
				"------  ---------  -------\n" +
				"rg1     Succeeded  eastus\n" +
				"rg2     Deleting   westus\n",
		},
		{
			name:  "query keeps the service's key order",
			doc:   sampleGroups,
			query: "[0]",
			want: "Name    Location    Count    Ratio    Enabled\n" +
				"------  ----------  -------  -------  ---------\n" +
				"rg1     eastus      3        0.5      True\n",
		},
		{
			name:  "scalars become Result",
			doc:   sampleGroups,
			query: "[].name",
			want:  "Result\n--------\nrg1\nrg2\n",
		},
		{
			name: "scalar result",
			doc:  `false`,
			want: "Result\n--------\nFalse\n",
		},
		{
			name:  "lists become Column1..N",
			doc:   sampleGroups,
			query: "[].[name, count]",
			want:  "Column1    Column2\n---------  ---------\nrg1        3\nrg2        12\n",
		},
		{
			name:      "transformer without query",
			doc:       sampleGroups,
			transform: groupListTable,
			want: "Name    Location    Status\n" +
				"------  ----------  ---------\n" +
				"rg1     eastus      Succeeded\n" +
				"rg2     westus      Deleting\n",
		},
		{
			name:      "query wins over the transformer",
			doc:       sampleGroups,
			query:     "[].{n:name}",
			transform: groupListTable,
			want:      "N\n---\nrg1\nrg2\n",
		},
		{
			name: "empty list prints an empty line",
			doc:  `[]`,
			want: "\n",
		},
		{
			name: "cells are stripped, lines right-trimmed, wide values widen the column",
			doc:  `[{"a":"  padded  ","b":"x"},{"a":"y","b":"a much longer value"}]`,
			want: "A       B\n------  -------------------\npadded  x\ny       a much longer value\n",
		},
		{
			name: "multi-line cells",
			doc:  `[{"a":"one\ntwo","b":"x"}]`,
			want: "A    B\n---  ---\none  x\ntwo\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := renderDoc(t, tc.doc, tc.query, "table", tc.transform)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestTableUnavailable(t *testing.T) {
	d, _ := decodeDocument([]byte(`[{"properties":{}},{"id":"x"}]`))
	_, err := render(d.node(d.root, nil), renderSettings{format: "table"})
	if err == nil || !strings.HasPrefix(err.Error(), "Table output unavailable.") {
		t.Errorf("err = %v", err)
	}
}

func TestNoneFormatPrintsNothing(t *testing.T) {
	if got, _ := renderDoc(t, sampleGroups, "", "none", nil); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestTSVOrder(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		// A multiselect hash is an OrderedDict for knack: insertion order.
		{"[].{Z:name, A:location}", "rg1\teastus\nrg2\twestus\n"},
		// A plain dict is sorted by key, whatever order the service sent.
		{"[0]", "3\tTrue\t/subscriptions/s/resourceGroups/rg1\teastus\tNone\trg1\t\t0.5\t\tMicrosoft.Resources/resourceGroups\n"},
		{"[].properties", "Succeeded\nDeleting\n"},
		{"[0].tags.env", "dev\n"},
		{"[].enabled", "true\nfalse\n"},
		{"[].[enabled, managedBy]", "True\tNone\nFalse\tsomeone\n"},
	} {
		got, _ := renderDoc(t, sampleGroups, tc.query, "tsv", nil)
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestPythonFloat(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {3, "3"}, {-12, "-12"}, {0.5, "0.5"}, {1e-7, "1e-07"}, {1.5e-5, "1.5e-05"},
		{0.0001, "0.0001"}, {123456789.125, "123456789.125"}, {1e20, "1e+20"}, {1.5e16, "1.5e+16"},
		{9007199254740993, "9007199254740992"}, {1 << 53, "9007199254740992"},
	} {
		if got := pythonFloat(tc.in); got != tc.want {
			t.Errorf("pythonFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPythonRepr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "'abc'"}, {"it's", `"it's"`}, {`say "hi" it's`, `'say "hi" it\'s'`},
		{"a\nb\tc\\", `'a\nb\tc\\'`}, {"é", "'é'"}, {"\x01", `'\x01'`},
	} {
		if got := pythonRepr(tc.in); got != tc.want {
			t.Errorf("pythonRepr(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestDecodeDocumentKeepsKeyOrderAndLastDuplicate(t *testing.T) {
	d, err := decodeDocument([]byte(`{"b":1,"a":{"y":1,"x":2},"b":3}`))
	if err != nil {
		t.Fatal(err)
	}
	o := d.node(d.root, nil).(*object)
	if strings.Join(o.keys, ",") != "b,a" || o.vals["b"] != float64(3) {
		t.Errorf("keys %v vals %v", o.keys, o.vals)
	}
	if inner := o.vals["a"].(*object); strings.Join(inner.keys, ",") != "y,x" {
		t.Errorf("inner keys %v", inner.keys)
	}
	for _, bad := range []string{`{"a":1} {}`, `{"a":`, `nope`} {
		if _, err := decodeDocument([]byte(bad)); err == nil {
			t.Errorf("decodeDocument(%q) succeeded", bad)
		}
	}
}
