package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Micro is the packages' own benchmarks (go test -bench), kept against a baseline
// file in the repository and compared with benchstat.
type Micro struct {
	Repo      string // repository root
	Baseline  string // e.g. bench/baseline/micro.txt
	BenchTime string
	Count     int
	Update    bool // replace the baseline with this run
}

// BenchPackages lists the packages under engine/ whose tests define benchmarks.
func (m *Micro) BenchPackages() ([]string, error) {
	seen := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(m.Repo, "engine"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "\nfunc Benchmark") {
			rel, _ := filepath.Rel(m.Repo, filepath.Dir(p))
			seen["./"+filepath.ToSlash(rel)+"/"] = true
		}
		return nil
	})
	var pkgs []string
	for p := range seen {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs, err
}

// Run writes micro.txt into out and returns benchstat's comparison with the baseline
// (or a note when there is no baseline yet, in which case this run becomes it).
func (m *Micro) Run(ctx context.Context, out string) (string, error) {
	pkgs, err := m.BenchPackages()
	if err != nil {
		return "", err
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", fmt.Sprint(m.Count),
		"-benchtime", m.BenchTime}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = m.Repo
	res, err := cmd.CombinedOutput()
	txt := filepath.Join(out, "micro.txt")
	if werr := os.WriteFile(txt, res, 0o644); werr != nil {
		return "", werr
	}
	if err != nil {
		return "", fmt.Errorf("go test -bench: %w (see %s)", err, txt)
	}
	base := filepath.Join(m.Repo, m.Baseline)
	if _, err := os.Stat(base); os.IsNotExist(err) || m.Update {
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(base, res, 0o644); err != nil {
			return "", err
		}
		return fmt.Sprintf("baseline %s written from this run\n", m.Baseline), nil
	}
	return benchstat(ctx, base, txt)
}

func benchstat(ctx context.Context, base, txt string) (string, error) {
	bin, err := exec.LookPath("benchstat")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "benchstat")
	}
	out, err := exec.CommandContext(ctx, bin, "baseline="+base, "this-run="+txt).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("benchstat: %w: %s", err, out)
	}
	return string(out), nil
}
