package client_test

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// wirePath is the import path of the protocol package the SDK hides.
const wirePath = "github.com/cleavefs/cleave/wire"

// The SDK's exported API names no type of package wire: every exported
// function, method, variable, constant, and every exported type with its
// exported fields and methods is type-checked and walked, so a caller
// never needs to import wire.
func TestAPIHasNoWireTypes(t *testing.T) {
	pkg := typeCheckClient(t)
	var leaks []string
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		w := &leakWalker{seen: map[types.Type]bool{}}
		w.walk(obj.Type(), name)
		leaks = append(leaks, w.leaks...)
	}
	sort.Strings(leaks)
	if len(leaks) > 0 {
		t.Fatalf("the exported API of package client mentions package wire %d times:\n%s",
			len(leaks), strings.Join(leaks, "\n"))
	}
}

// typeCheckClient type-checks the package's non-test files from source.
func typeCheckClient(t *testing.T) *types.Package {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, n, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	pkg, err := conf.Check("github.com/cleavefs/cleave/client", fset, files, nil)
	if err != nil {
		t.Fatalf("type-check package client: %v", err)
	}
	return pkg
}

// leakWalker collects the places where a type reachable through the
// exported API is declared in package wire.
type leakWalker struct {
	seen  map[types.Type]bool
	leaks []string
}

func (w *leakWalker) walk(t types.Type, where string) {
	if t == nil || w.seen[t] {
		return
	}
	w.seen[t] = true
	switch t := t.(type) {
	case *types.Alias:
		w.walk(types.Unalias(t), where)
	case *types.Named:
		obj := t.Obj()
		if obj.Pkg() != nil && obj.Pkg().Path() == wirePath {
			w.leaks = append(w.leaks, where+": wire."+obj.Name())
			return
		}
		if args := t.TypeArgs(); args != nil {
			for i := range args.Len() {
				w.walk(args.At(i), where)
			}
		}
		if obj.Pkg() == nil || obj.Pkg().Path() != "github.com/cleavefs/cleave/client" {
			return // a type of another package (time.Time, iter.Seq2): only its arguments count
		}
		w.walk(t.Underlying(), where)
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
	case *types.Pointer:
		w.walk(t.Elem(), where)
	case *types.Slice:
		w.walk(t.Elem(), where)
	case *types.Array:
		w.walk(t.Elem(), where)
	case *types.Map:
		w.walk(t.Key(), where)
		w.walk(t.Elem(), where)
	case *types.Chan:
		w.walk(t.Elem(), where)
	case *types.Signature:
		w.walk(t.Params(), where)
		w.walk(t.Results(), where)
	case *types.Tuple:
		for i := range t.Len() {
			w.walk(t.At(i).Type(), where)
		}
	case *types.Struct:
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
	}
}
