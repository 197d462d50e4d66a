package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestParseTags(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want map[string]string
	}{
		{nil, nil},
		{[]string{""}, map[string]string{}},
		{[]string{"env=dev", "team=db"}, map[string]string{"env": "dev", "team": "db"}},
		{[]string{"flag"}, map[string]string{"flag": ""}},
		{[]string{"k=a=b"}, map[string]string{"k": "a=b"}},
		{[]string{"k=", "=v"}, map[string]string{"k": "", "": "v"}},
		{[]string{"k=1", "k=2"}, map[string]string{"k": "2"}},
	} {
		if got := ParseTags(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTags(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeLocation(t *testing.T) {
	for in, want := range map[string]string{"eastus": "eastus", "East US": "eastus", "West US 2": "westus2", "": ""} {
		if got := NormalizeLocation(in); got != want {
			t.Errorf("NormalizeLocation(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandMultiValueFlags(t *testing.T) {
	root := &cobra.Command{Use: "pgflex"}
	var tags, defaults []string
	var name string
	leaf := &cobra.Command{Use: "create", Run: func(*cobra.Command, []string) {}}
	leaf.Flags().StringVarP(&name, "name", "n", "", "")
	AddTagsFlag(leaf, &tags)
	leaf.Flags().StringArrayVarP(&defaults, "defaults", "d", nil, "")
	markMultiValue(leaf, "defaults", "+")
	root.AddCommand(leaf)
	for _, tc := range []struct {
		in   string
		want string
		err  string
	}{
		{"create --tags a=b c=d -n x", "create --tags=a=b --tags=c=d -n x", ""},
		{"create -n x --tags", "create -n x --tags=", ""},
		{"create --tags= -n x", "create --tags= -n x", ""},
		{"create --tags=a b -n x", "create --tags=a --tags=b -n x", ""},
		{"create --tags n=-1 -5 -n x", "create --tags=n=-1 --tags=-5 -n x", ""},
		{"create -d group=rg location=eastus", "create --defaults=group=rg --defaults=location=eastus", ""},
		{"create -n x -- --tags a", "create -n x -- --tags a", ""},
		{"create --defaults -n x", "", "argument --defaults/-d: expected at least one argument"},
	} {
		got, err := expandMultiValueFlags(root, strings.Fields(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%q → %q (%v), want %q", tc.in, strings.Join(got, " "), err, tc.want)
		}
	}
}
