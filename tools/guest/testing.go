package guest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SkipOrFail applies the project's rule for a test that cannot run here: under
// CI (CI=true) it fails, because a skipped interop test proves nothing and would
// hide a broken setup; elsewhere it skips with the reason.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("qemu guest needed but unavailable (CI=true, so this fails instead of skipping): %s", reason)
	}
	t.Skipf("skipping: qemu guest unavailable: %s", reason)
}

// Start builds the image and boots a guest for t, and closes it when t ends.
// opts.Image, if empty, comes from Build. A machine without qemu or without a
// buildable image goes through SkipOrFail; a guest that does not boot fails t.
// Without opts.ConsoleLog the log goes to $SLUICE_GUEST_LOGDIR, or else t's
// temporary directory, as TESTNAME.console.log; its tail is printed if t failed.
func Start(t testing.TB, opts Options) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultBuildTimeout)
	defer cancel()
	if opts.Image.Kernel == "" {
		img, err := Build(ctx)
		if err != nil {
			SkipOrFail(t, err.Error())
		}
		opts.Image = img
	}
	if opts.ConsoleLog == "" {
		// SLUICE_GUEST_LOGDIR keeps logs after the run (CI artifacts);
		// t.TempDir is removed when the test ends.
		dir := os.Getenv("SLUICE_GUEST_LOGDIR")
		if dir == "" {
			dir = t.TempDir()
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		opts.ConsoleLog = filepath.Join(dir, name+".console.log")
	}
	start := time.Now()
	vm, err := Boot(ctx, opts)
	if errors.Is(err, ErrNoQEMU) {
		SkipOrFail(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest %s booted in %.1fs; console log %s", opts.Image.Release, time.Since(start).Seconds(), opts.ConsoleLog)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("guest log tail (full log: %s):\n%s", opts.ConsoleLog, vm.LogTail(80))
		}
		if err := vm.Close(); err != nil {
			t.Log(err)
		}
	})
	return vm
}
