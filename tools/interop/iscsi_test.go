package interop

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The iSCSI target's judges are initiators we did not write: libiscsi's iscsi-test-cu
// (its SCSI and iSCSI conformance suites) and iscsi-perf, and open-iscsi in the Linux
// guest (tools/guest).

// requireTool finds a peer's binary. Under CI a missing peer fails the test: the
// project's setup installs it, so its absence is a broken setup, not a reason to skip.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (tools/setup.sh installs it): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// iscsiURL is the libiscsi URL of LUN lun of the daemon's default target node.
func (d *daemon) iscsiURL(lun int) string {
	return fmt.Sprintf("iscsi://127.0.0.1:%d/iqn.2026-11.dev.sluice:vol0/%d", d.iscsiPort, lun)
}

// cuResult is one iscsi-test-cu test's outcome.
type cuResult struct {
	name    string // Suite.Test
	passed  bool
	skipped string // the [SKIPPED] reason, when the test passed by skipping
	detail  []string
}

var (
	cuSuite  = regexp.MustCompile(`^Suite: (\S+)`)
	cuTest   = regexp.MustCompile(`^  Test: (\S+) \.\.\.(.*)$`)
	cuSkip   = regexp.MustCompile(`\[SKIPPED\] ([^\n]*)`)
	cuAssert = regexp.MustCompile(`^[0-9]+\. \S+:[0-9]+`)
)

// parseCU reads iscsi-test-cu's verbose output. After "  Test: X ..." come the
// messages the test printed at normal level (a "[SKIPPED] why" among them when it
// skipped), then CUnit's verdict at the start of a line: "passed", or "FAILED" followed
// by numbered assertion lines. Text after "passed" on the same line belongs to the
// next test's setup.
func parseCU(out string) []cuResult {
	var res []cuResult
	suite := ""
	var cur *cuResult
	var msgs strings.Builder
	verdict := func(line string) bool {
		switch {
		case strings.HasPrefix(line, "passed"):
			cur.passed = true
		case strings.HasPrefix(line, "FAILED"):
		default:
			msgs.WriteString(line)
			msgs.WriteByte('\n')
			return false
		}
		if m := cuSkip.FindStringSubmatch(msgs.String()); m != nil {
			cur.skipped = m[1]
		}
		if !cur.passed {
			for _, l := range strings.Split(msgs.String(), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					cur.detail = append(cur.detail, l)
				}
			}
		}
		res = append(res, *cur)
		cur = nil
		msgs.Reset()
		return true
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := cuSuite.FindStringSubmatch(line); m != nil {
			suite = m[1]
			continue
		}
		if m := cuTest.FindStringSubmatch(line); m != nil {
			cur = &cuResult{name: suite + "." + m[1]}
			verdict(strings.TrimLeft(m[2], " "))
			continue
		}
		if cur != nil {
			verdict(line)
			continue
		}
		// "    1. test_x.c:71  - CU_ASSERT..." lines follow a FAILED verdict.
		if s := strings.TrimSpace(line); len(res) > 0 && !res[len(res)-1].passed && cuAssert.MatchString(s) {
			res[len(res)-1].detail = append(res[len(res)-1].detail, s)
		}
	}
	return res
}

// cuSummary reads the "tests" row of CUnit's run summary: total, ran, passed, failed.
var cuSummary = regexp.MustCompile(`(?m)^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)

// knownFailures are the iscsi-test-cu tests sluice fails (or skips, in a required
// suite) today, each with why; the README's conformance section lists them. The test
// fails on any other failure, and reports listed ones that now pass so that the list
// only shrinks.
var knownFailures = map[string]string{
	"GetLBAStatus.UnmapSingle": "libiscsi 1.19 bug with more than one logical block per " +
		"physical block: test_get_lba_status_unmap_single.c:120 asks GET LBA STATUS at LBA " +
		"i+1 and line 134 wants the first descriptor at i+LBPPB, but SBC-3 requires the first " +
		"descriptor to contain the starting LBA; sluice reports LBPPBE 3 (4 KiB physical " +
		"blocks under 512-byte logical ones), so the two differ",
	"WriteSame10.UnmapUntilEnd": "libiscsi 1.19 bug (unchanged at HEAD): " +
		"test_writesame10_unmap_until_end.c:51-57 sends WRITE SAME(10) UNMAP=1 with the block " +
		"of 0xFF it just wrote (the WRITE SAME(16) twin clears it first, line 59) and line 71 " +
		"wants zeros back; SBC-4 says reads return the block sent, and sluice writes a " +
		"non-zero block rather than deallocate it",
	"Sanitize.Reset": "timing: test_sanitize_reset.c:93 sleeps 3 s after starting SANITIZE " +
		"OVERWRITE and line 97 (then 165, after the resets and a reconnect) wants it still in " +
		"progress; sluice overwrites the 1 GiB test volume at disk speed in about 2 s. The " +
		"test passes when the overwrite lasts longer (a bigger or slower volume): the " +
		"operation survives ABORT TASK, LUN reset and the connection's loss",
}

// requiredSuites are the suites whose every test must pass, not skip: the commands
// and protocol features sluice implements (issue 8's list).
var requiredSuites = regexp.MustCompile(`^(Prin|Prout|Reserve6|CompareAndWrite|Unmap|WriteSame|OrWrite|` +
	`MultipathIO|iSCSI|Read1|Read6|Write1|WriteVerify|Verify|Inquiry|ReadCapacity|TestUnitReady|` +
	`ReportSupportedOpcodes|ModeSense6|GetLBAStatus|Prefetch|StartStopUnit|PreventAllow|Mandatory)`)

// allowedSkips are skip reasons that say the volume lacks a property a test needs,
// not that sluice lacks a feature: a fixed disk is neither removable nor write
// protected.
var allowedSkips = regexp.MustCompile(`not removable|not write-protected|Media is not removable`)

// TestLibiscsiConformance runs every test of libiscsi's iscsi-test-cu (family ALL:
// SBC, SPC, persistent reservations, multipath through a second session, and the
// iSCSI protocol suites) against the daemon's default volume, destructive tests
// included, and prints passed/failed/skipped per suite. A skipped test counts as not
// passed.
func TestLibiscsiConformance(t *testing.T) {
	cu := requireTool(t, "iscsi-test-cu")
	d := newDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, cu, "--dataloss", "--allow-sanitize", "-t", "ALL",
		"-i", "iqn.2026-11.dev.sluice:interop-1", "-I", "iqn.2026-11.dev.sluice:interop-2",
		d.iscsiURL(0), d.iscsiURL(0))
	outb, _ := cmd.CombinedOutput()
	out := string(outb)
	if ctx.Err() != nil {
		t.Fatalf("iscsi-test-cu did not finish in 10 minutes; last output:\n%s", tail(out, 40))
	}
	res := parseCU(out)
	sm := cuSummary.FindStringSubmatch(out)
	if sm == nil || sm[1] != strconv.Itoa(len(res)) || len(res) < 200 {
		t.Fatalf("parsed %d test results, CUnit's summary says %v; output tail:\n%s", len(res), sm, tail(out, 60))
	}
	type tally struct{ passed, failed, skipped int }
	suites := map[string]*tally{}
	var bad, fixed []string
	total := tally{}
	skips := map[string]int{}
	for _, r := range res {
		suite, _, _ := strings.Cut(r.name, ".")
		tl := suites[suite]
		if tl == nil {
			tl = &tally{}
			suites[suite] = tl
		}
		_, known := knownFailures[r.name]
		switch {
		case r.passed && r.skipped == "":
			tl.passed++
			total.passed++
			if known {
				fixed = append(fixed, r.name)
			}
		case r.passed:
			tl.skipped++
			total.skipped++
			skips[r.skipped]++
			if requiredSuites.MatchString(suite) && !allowedSkips.MatchString(r.skipped) && !known {
				bad = append(bad, r.name+": skipped: "+r.skipped)
			}
		default:
			tl.failed++
			total.failed++
			if !known {
				bad = append(bad, r.name+": "+strings.Join(r.detail, " | "))
			}
		}
	}
	t.Logf("iscsi-test-cu -t ALL: %d tests: %d passed, %d failed, %d skipped, in %s",
		len(res), total.passed, total.failed, total.skipped, time.Since(start).Round(time.Second))
	names := make([]string, 0, len(suites))
	for n := range suites {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tl := suites[n]
		t.Logf("  %-28s passed %3d  failed %3d  skipped %3d", n, tl.passed, tl.failed, tl.skipped)
	}
	for _, k := range sortedKeys(skips) {
		t.Logf("  skipped %3d× %s", skips[k], k)
	}
	for _, f := range fixed {
		t.Logf("  now passes, remove from knownFailures: %s", f)
	}
	for name, why := range knownFailures {
		t.Logf("  known failure %s: %s", name, why)
	}
	if len(bad) > 0 {
		t.Errorf("%d iscsi-test-cu tests failed, or skipped in a required suite:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
