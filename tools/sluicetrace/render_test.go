package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"sluice/bpf"
)

// snapshots makes two cumulative snapshots one second apart: 100 I/Os around 20 µs on
// vol0/reactor 1 in the first second, 50 more around 300 µs in the second, with one
// operation in flight for the whole second (average depth 1).
func snapshots() (bpf.Snapshot, bpf.Snapshot) {
	k := bpf.SeriesKey{Kind: bpf.KindIO, Reactor: 1, Volume: "vol0"}
	s1 := bpf.Series{SeriesKey: k, Count: 100, SumNs: 100 * 20000, Depth: 1, LastNs: 1e9}
	s1.Hist[bpf.SlotOf(20000)] = 100
	s2 := s1
	s2.Count, s2.SumNs = 150, s1.SumNs+50*300000
	s2.Hist[bpf.SlotOf(300000)] = 50
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return bpf.Snapshot{At: t0, MonoNs: 1e9, Series: []bpf.Series{s1}},
		bpf.Snapshot{At: t0.Add(time.Second), MonoNs: 2e9, Series: []bpf.Series{s2}}
}

func TestIntervals(t *testing.T) {
	r := newRecorder(bpf.Options{SampleIO: 4})
	a, b := snapshots()
	r.add(a)
	iv := r.add(b)
	if len(iv.Series) != 1 {
		t.Fatal(iv.Series)
	}
	s := iv.Series[0]
	if s.Count != 50 || s.Hist.Count() != 50 || s.Total != 150 || s.Sample != 4 {
		t.Fatalf("interval %+v", s)
	}
	// One sampled operation in flight for the whole second, 1 in 4 sampled.
	if s.AvgDepth < 3.99 || s.AvgDepth > 4.01 || s.Depth != 4 {
		t.Fatalf("avg depth %v, depth %d, want 4", s.AvgDepth, s.Depth)
	}
	var text bytes.Buffer
	if err := writeText(&text, iv, []bpf.Event{{SeriesKey: s.SeriesKey, Latency: 2 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"@io[vol0, reactor 1] (ns): 50 traced, 200/s (1 in 4)", "avg depth 4.0",
		"[256K, 512K)", "|@@@@", "outlier @io[vol0, reactor 1]: 2.00ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	var js bytes.Buffer
	if err := writeJSON(&js, iv, nil); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Series []struct {
			Kind   string   `json:"kind"`
			Volume string   `json:"volume"`
			Count  uint64   `json:"count"`
			P50Ns  uint64   `json:"p50_ns"`
			Rate   float64  `json:"rate_per_s"`
			Log2   []uint64 `json:"log2_hist"`
		} `json:"series"`
		Outliers []any `json:"outliers"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err, js.String())
	}
	g := got.Series[0]
	if g.Kind != "io" || g.Volume != "vol0" || g.Count != 50 || g.Rate != 200 || len(g.Log2) != 20 ||
		g.P50Ns < 280000 || g.P50Ns > 320000 || got.Outliers == nil {
		t.Fatalf("json %s", js.String())
	}
}

func TestHeatmapIsSVG(t *testing.T) {
	r := newRecorder(bpf.Options{})
	a, b := snapshots()
	r.add(a)
	r.add(b)
	var buf bytes.Buffer
	if err := writeHeatmap(&buf, r); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	rects := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background, two filled cells (one per interval), the frame.
	if rects != 4 {
		t.Fatalf("%d rects", rects)
	}
}

func TestDur(t *testing.T) {
	for ns, want := range map[uint64]string{850: "850ns", 12345: "12.3µs", 4560000: "4.56ms", 1.2e9: "1.20s", 999999: "1000µs"} {
		if got := dur(ns); got != want {
			t.Errorf("dur(%d) = %q, want %q", ns, got, want)
		}
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags([]string{}, io.Discard); err == nil {
		t.Fatal("no pid accepted")
	}
	o, err := parseFlags([]string{"-p", "42", "-sample", "64", "-json", "-svg", "x.svg"}, io.Discard)
	if err != nil || o.pid != 42 || o.sample != 64 || !o.json || o.svg != "x.svg" {
		t.Fatal(o, err)
	}
}
