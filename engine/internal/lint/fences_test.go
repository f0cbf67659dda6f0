package lint

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "sluice"

// layers orders the engine's packages: a package may import packages of its own layer
// or lower, never higher. Packages not listed are checked by the other rules only.
var layers = []struct {
	prefix string
	rank   int
}{
	{"cgo", 0},
	{"engine/internal", 0},
	{"engine/proto", 0},
	// Probe sites: every layer (bdev, nvmf, iscsi, replication) calls them, so they
	// import nothing of sluice.
	{"engine/probe", 0},
	{"engine/reactor", 1},
	{"engine/mem", 1},
	{"engine/bdev", 2},
	{"engine/rpc", 2},
	{"engine/tcpconn", 2},
	{"engine/reservation", 3},
	{"engine/group", 3},
	{"engine/replication", 3},
	{"engine/scsi", 3},
	{"engine/nvmf", 4},
	{"engine/iscsi", 4},
	{"bench", 5},
	{"tools", 5},
	// The eBPF tracer attaches to a daemon from outside; nothing in the engine imports it.
	{"bpf", 5},
	// The simulator drives the group (and what sits on it) in tests: it may import any
	// engine package, and only tests may import it (checked below).
	{"engine/sim", 5},
}

func rankOf(pkg string) (int, bool) {
	best, rank := -1, 0
	for _, l := range layers {
		if (pkg == l.prefix || strings.HasPrefix(pkg, l.prefix+"/")) && len(l.prefix) > best {
			best, rank = len(l.prefix), l.rank
		}
	}
	return rank, best >= 0
}

type goFile struct {
	path    string // relative to the repository root
	pkg     string // package directory relative to the root
	imports []string
	test    bool
}

func repoFiles(t *testing.T) []goFile {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	var files []goFile
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "var") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		gf := goFile{path: rel, pkg: filepath.ToSlash(filepath.Dir(rel)), test: strings.HasSuffix(path, "_test.go")}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			gf.imports = append(gf.imports, p)
		}
		files = append(files, gf)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestUnsafeOnlyInUnsafeFiles: gVisor's rule, so that every use of unsafe is in a file
// whose name warns the reader.
func TestUnsafeOnlyInUnsafeFiles(t *testing.T) {
	for _, f := range repoFiles(t) {
		for _, imp := range f.imports {
			if imp == "unsafe" && !strings.HasSuffix(f.path, "_unsafe.go") && !strings.HasSuffix(f.path, "_unsafe_test.go") {
				t.Errorf("%s imports unsafe; only files named *_unsafe.go may", f.path)
			}
		}
	}
}

// TestCgoOnlyUnderCgo keeps C out of the engine: everything C sits behind the cgo/
// packages' Go APIs.
func TestCgoOnlyUnderCgo(t *testing.T) {
	for _, f := range repoFiles(t) {
		for _, imp := range f.imports {
			if imp == "C" && !strings.HasPrefix(f.pkg, "cgo/") {
				t.Errorf("%s imports C; only packages under cgo/ may", f.path)
			}
		}
	}
}

// TestImportLayers checks that packages import downward only, that proto codecs use
// the standard library only, and that engine never imports tools or bench.
func TestImportLayers(t *testing.T) {
	for _, f := range repoFiles(t) {
		from, ranked := rankOf(f.pkg)
		for _, imp := range f.imports {
			if strings.HasPrefix(f.pkg, "engine/proto") && strings.Contains(strings.Split(imp, "/")[0], ".") {
				t.Errorf("%s imports %s; engine/proto is standard library only", f.path, imp)
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			target := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(f.pkg, "engine") && (strings.HasPrefix(target, "tools") || strings.HasPrefix(target, "bench")) {
				t.Errorf("%s imports %s; engine never imports tools or bench", f.path, imp)
			}
			if strings.HasPrefix(f.pkg, "engine") && (target == "bpf" || strings.HasPrefix(target, "bpf/")) {
				t.Errorf("%s imports %s; the engine only offers probe sites (engine/probe) to the tracer", f.path, imp)
			}
			if f.pkg == "engine/probe" && target != "engine/probe" {
				t.Errorf("%s imports %s; engine/probe imports nothing of sluice", f.path, imp)
			}
			if target == "engine/sim" || strings.HasPrefix(target, "engine/sim/") {
				if !f.test && !strings.HasPrefix(f.pkg, "engine/sim") {
					t.Errorf("%s imports %s; the simulator is for tests only", f.path, imp)
				}
			}
			to, ok := rankOf(target)
			if ranked && ok && to > from && !f.test {
				t.Errorf("%s (layer %d) imports %s (layer %d); imports go downward only", f.path, from, imp, to)
			}
		}
	}
}
