package redisstore_test

import (
	"errors"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestScriptHeaders reads the store's Go source: every script made with
// redis.NewScript opens with its header, one Lua comment line per KEYS[i]
// and ARGV[i] it uses (or one line for a run of ARGV: "-- ARGV[3..]",
// "-- ARGV  pairs..."), and one line for its result.
func TestScriptHeaders(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	// Type-check for the constant values of the scripts' sources (some are
	// joined from shared constants).
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	conf := types.Config{Importer: noImports{}, Error: func(error) {}}
	conf.Check("redisstore", fset, files, info)

	used := regexp.MustCompile(`(KEYS|ARGV)\[(\d+)\]`)
	found := 0
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "NewScript" {
				return true
			}
			tv, ok := info.Types[call.Args[0]]
			if !ok || tv.Value == nil {
				t.Errorf("%s: a script whose source is not a constant", fset.Position(call.Pos()))
				return true
			}
			found++
			src := constant.StringVal(tv.Value)
			var header, code []string
			inHeader := true
			for _, line := range strings.Split(strings.TrimLeft(src, "\n"), "\n") {
				if inHeader && strings.HasPrefix(line, "--") {
					header = append(header, line)
					continue
				}
				inHeader = false
				code = append(code, line)
			}
			where := fset.Position(call.Pos()).String()
			if len(header) == 0 {
				t.Errorf("%s: the script has no header", where)
				return true
			}
			h := strings.Join(header, "\n")
			if !strings.Contains(h, "-- Result:") {
				t.Errorf("%s: the header says nothing of the result", where)
			}
			for _, m := range used.FindAllStringSubmatch(strings.Join(code, "\n"), -1) {
				i, _ := strconv.Atoi(m[2])
				if !described(h, m[1], i) {
					t.Errorf("%s: %s[%d] is used but not in the header", where, m[1], i)
				}
			}
			return true
		})
	}
	if found < 10 {
		t.Errorf("found %d scripts in the source, want every one (10)", found)
	}
}

// described reports whether the header has a line for name[i]: its own,
// a run "name[k..]" with k <= i, or one for all of name ("-- ARGV ").
func described(header, name string, i int) bool {
	if strings.Contains(header, "-- "+name+"["+strconv.Itoa(i)+"]") || strings.Contains(header, "-- "+name+" ") {
		return true
	}
	for k := 1; k <= i; k++ {
		if strings.Contains(header, "-- "+name+"["+strconv.Itoa(k)+"..]") {
			return true
		}
	}
	return false
}

// noImports refuses every import: the checker needs only the package's
// own constants.
type noImports struct{}

func (noImports) Import(string) (*types.Package, error) { return nil, errors.New("not needed") }
