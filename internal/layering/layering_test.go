package layering

import (
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot returns the directory of go.mod and the module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return dir, strings.TrimSpace(m)
		}
	}
	t.Fatal("go.mod names no module")
	return "", ""
}

// moduleGraph lists every package of the module (go/build, for this
// platform's build constraints) with its non-test imports.
func moduleGraph(t *testing.T) (string, map[string][]string) {
	root, module := moduleRoot(t)
	graph := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
			return filepath.SkipDir
		}
		if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
			return filepath.SkipDir // a module of its own, as ./... skips it
		}
		pkg, err := build.Default.ImportDir(path, 0)
		if err != nil {
			if _, none := err.(*build.NoGoError); none {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		graph[filepath.ToSlash(rel)] = pkg.Imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return module, graph
}

// TestModuleLayering checks every package of the module against Rules.
func TestModuleLayering(t *testing.T) {
	module, graph := moduleGraph(t)
	for _, must := range []string{"wire", "client", "internal/rpc", "cmd/cleave"} {
		if _, ok := graph[must]; !ok {
			t.Fatalf("package %s not found: the walk of the module is broken (found %d packages)", must, len(graph))
		}
	}
	for _, line := range Check(module, graph) {
		t.Error(line)
	}
}

// TestCheckCatchesAWrongImport feeds Check a graph that breaks the rules
// and checks that each break is reported by name.
func TestCheckCatchesAWrongImport(t *testing.T) {
	const m = "example.com/m"
	graph := map[string][]string{
		"wire":         {"fmt", m + "/internal/fspath", m + "/router"},
		"router":       {m + "/control", m + "/wire", m + "/internal/rpc"},
		"client":       {m + "/internal/eventually"},
		"up":           {m + "/cmd/cleave"},
		"fsm":          {m + "/replica"},
		"newthing":     {m + "/wire"},
		"internal/rpc": {m + "/wire"},
	}
	got := Check(m, graph)
	want := []string{
		"client imports internal/eventually: a test helper; only tests and other test helpers import it",
		"fsm imports replica: not in its allowed imports [wire internal/fspath internal/ring internal/durable]",
		"newthing: no layering rule; add it to internal/layering.Rules and docs/packages.md",
		"up imports cmd/cleave: nothing imports a command",
		"wire imports router: not in its allowed imports [internal/fspath]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Check =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The allowed imports alone pass.
	if got := Check(m, map[string][]string{"router": graph["router"], "internal/rpc": graph["internal/rpc"]}); got != nil {
		t.Fatalf("Check of allowed imports = %v, want none", got)
	}
}

// TestRulesOnlyNameKnownPackages keeps the table free of typos: every
// allowed import is a package the table itself describes, or a pattern.
func TestRulesOnlyNameKnownPackages(t *testing.T) {
	for pkg, allowed := range Rules {
		for _, a := range allowed {
			if _, ok := Rules[a]; !ok && a != "*" && a != "internal/*" {
				t.Errorf("Rules[%q] allows %q, which has no rule of its own", pkg, a)
			}
		}
	}
}
