package handlers_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestHandlersImportNoDriver keeps issue 14's rule: driver errors are
// classified in one place per driver (models, the session store), so no
// handler may import a Postgres or Redis driver, nor GORM. Tests may, to
// poke the databases.
func TestHandlersImportNoDriver(t *testing.T) {
	forbidden := []string{"gorm.io/", "github.com/redis/go-redis", "github.com/go-redis/", "github.com/jackc/pgx", "github.com/jackc/pgconn"}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, prefix := range forbidden {
				if strings.HasPrefix(path, prefix) {
					t.Errorf("%s imports %s", fset.Position(imp.Pos()), path)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files read")
	}
}
