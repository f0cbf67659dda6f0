package bench

import (
	"testing"
)

// TestParsePerf reads spdk_nvme_perf's Total line and -L summary as v23.01 prints them.
func TestParsePerf(t *testing.T) {
	out := `Initialization complete. Launching workers.
========================================================
                                                                 Latency(us)
Device Information                      :       IOPS      MiB/s    Average        min        max
TCP (addr:127.0.0.1 subnqn:x) NSID 1 from core  1:  230335.39     899.75      34.71      13.05    2401.76
========================================================
Total                                   :  230335.39     899.75      34.71      13.05    2401.76

Summary latency data for TCP (addr:127.0.0.1 subnqn:x) from core 1:
=================================================================================
  1.00000% :    17.329us
 50.00000% :    35.052us
 99.00000% :    82.314us
 99.90000% :   145.723us
 99.99999% :  2407.188us
`
	s, err := parsePerf(out)
	if err != nil {
		t.Fatal(err)
	}
	l := s.Latency
	if s.IOPS != 230335.39 || l.P50Ns != 35052 || l.P99Ns != 82314 || l.P999Ns != 145723 || l.MaxNs != 2401760 {
		t.Errorf("parsed %+v, latency %+v", s, l)
	}
	if len(l.CDF) != 5 || !l.Known() {
		t.Errorf("cdf %v", l.CDF)
	}
	if _, err := parsePerf("no totals"); err == nil {
		t.Error("output without a Total line parsed")
	}
}

// TestParseISCSIPerf averages the per-second figures after the warm-up only.
func TestParseISCSIPerf(t *testing.T) {
	out := "will run for 3 seconds.\n\n00:00:01 - lba 1, iops current 1000 (4 MB/s), iops average 1000 (4 MB/s), in_flight 32, busy 0\r" +
		"00:00:02 - lba 2, iops current 3000 (12 MB/s), iops average 2000\r" +
		"00:00:03 - lba 3, iops current 5000 (20 MB/s), iops average 3000\r\nfinished.\n"
	got, err := parseISCSIPerf(out, 1, 3)
	if err != nil || got != 4000 {
		t.Fatalf("parseISCSIPerf = %v, %v; want 4000", got, err)
	}
	if got, _ := parseISCSIPerf(out, 1, 2); got != 3000 {
		t.Errorf("second 3 counted past the window: %v", got)
	}
	if _, err := parseISCSIPerf(out, 3, 4); err == nil {
		t.Error("no figure after the warm-up parsed")
	}
}

// TestAggregatePairs: ratios pair samples of the same repetition and point, so a
// repetition where the whole machine was slow does not count against sluice.
func TestAggregatePairs(t *testing.T) {
	w := Workloads[0]
	pt := Point{Workload: w, QD: 1, Conns: 1}
	mk := func(fam, target, init string, rep int, iops float64) Sample {
		return Sample{Family: fam, Target: target, Initiator: init, Backend: "null", Point: pt, Rep: rep, IOPS: iops}
	}
	samples := []Sample{
		mk("limit", "limit", InitiatorRaw, 0, 100), mk("sluice", "sluice-null", InitiatorGo, 0, 80),
		mk("spdk", "spdk-null", InitiatorGo, 0, 40),
		mk("limit", "limit", InitiatorRaw, 1, 50), mk("sluice", "sluice-null", InitiatorGo, 1, 45),
		mk("spdk", "spdk-null", InitiatorGo, 1, 30),
		mk("limit", "limit", InitiatorRaw, 2, 200), mk("sluice", "sluice-null", InitiatorGo, 2, 100),
		mk("spdk", "spdk-null", InitiatorGo, 2, 50),
	}
	rows := Aggregate(samples)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	s := rows[1]
	if s.Target != "sluice-null" || s.IOPS.Med != 80 || s.IOPS.Min != 45 || s.IOPS.Max != 100 {
		t.Fatalf("sluice row %+v", s.IOPS)
	}
	if s.VsLimit.Med != 0.8 || s.VsLimit.Min != 0.5 || s.VsLimit.Max != 0.9 {
		t.Errorf("vs limit %+v, want median 0.8 of 0.8, 0.9, 0.5", s.VsLimit)
	}
	if p := s.VsPeer["spdk-null"]; p.Med != 2 || p.Min != 1.5 || p.Max != 2 {
		t.Errorf("vs peer %+v, want median 2 of 2, 1.5, 2", p)
	}
	if rows[0].VsPeer != nil || rows[0].VsLimit.N != 0 {
		t.Errorf("the limit compared with itself: %+v", rows[0])
	}
}

// TestParseQDs accepts "max" and refuses nonsense.
func TestParseQDs(t *testing.T) {
	q, err := ParseQDs("1, 8,32,max")
	if err != nil || len(q) != 4 || q[3] != QDMax {
		t.Fatalf("ParseQDs = %v, %v", q, err)
	}
	for _, bad := range []string{"0", "x", "5000"} {
		if _, err := ParseQDs(bad); err == nil {
			t.Errorf("ParseQDs(%q) accepted", bad)
		}
	}
}

// TestContention: /proc yields the harness's own CPU time and the cores' busy time,
// and the foreign share of a point stays a fraction.
func TestContention(t *testing.T) {
	if treeCPU() < 0 || coreBusy([]int{0}) < 0 {
		t.Skip("no /proc")
	}
	c := startContention([]int{0})
	for i := 0; i < 1e7; i++ { // burn a little of this process's own CPU
		_ = i * i
	}
	if s := c.share(); s < 0 || s > 1 {
		t.Errorf("contention share %v, want a fraction", s)
	}
}
