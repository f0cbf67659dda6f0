package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sluice/bpf"
)

type options struct {
	pid         int
	interval    time.Duration
	duration    time.Duration
	sample      uint
	replSample  uint
	io, repl    bool
	outlier     time.Duration
	replOutlier time.Duration
	json        bool
	svg         string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sluicetrace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.pid, "p", 0, "pid of the sluice daemon (required)")
	fs.DurationVar(&o.interval, "interval", time.Second, "print every interval")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: on SIGINT)")
	// 64: a traced command costs two probe hits (~1.5 µs of CPU each), so 1 in 64 keeps
	// a reactor near 600k IOPS within a few percent; use 1 for exact counts at low rates.
	fs.UintVar(&o.sample, "sample", 64, "trace 1 I/O command in N")
	fs.UintVar(&o.replSample, "repl-sample", 1, "trace 1 replication frame/journal entry in N")
	fs.BoolVar(&o.io, "io", false, "attach the I/O sites (default: both groups)")
	fs.BoolVar(&o.repl, "repl", false, "attach the replication sites (default: both groups)")
	fs.DurationVar(&o.outlier, "outlier", time.Millisecond, "report I/O slower than this (0: none)")
	fs.DurationVar(&o.replOutlier, "repl-outlier", 10*time.Millisecond,
		"report replication acks and journal entries slower than this (0: none)")
	fs.BoolVar(&o.json, "json", false, "print JSON lines instead of histograms")
	fs.StringVar(&o.svg, "svg", "", "write a latency heatmap over time to this SVG file on exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.pid <= 0 || fs.NArg() > 0 || o.interval <= 0 || o.sample == 0 || o.replSample == 0 {
		fs.Usage()
		return o, errors.New("usage")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sluicetrace:", err)
		os.Exit(1)
	}
}

// run attaches, prints until ctx ends, then detaches and writes the heatmap.
func run(ctx context.Context, o options, out io.Writer) error {
	tr, err := bpf.Attach(o.pid, bpf.Options{
		IO: o.io, Repl: o.repl, SampleIO: uint32(o.sample), SampleRepl: uint32(o.replSample),
		IOOutlier: o.outlier, ReplOutlier: o.replOutlier, JournalOutlier: o.replOutlier,
	})
	if err != nil {
		return err
	}
	defer tr.Close()
	rec := newRecorder(tr.Options())
	if !o.json {
		fmt.Fprintf(out, "Attached to pid %d (I/O 1 in %d, replication 1 in %d). Ctrl-C to stop.\n",
			o.pid, tr.Sample(bpf.KindIO), tr.Sample(bpf.KindRepl))
	}
	events := make(chan bpf.Event, 1024)
	go readEvents(tr, events)
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	var pending []bpf.Event
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case e := <-events:
			pending = append(pending, e)
			continue
		case <-tick.C:
		}
		snap, err := tr.Snapshot()
		if err != nil {
			return err
		}
		iv := rec.add(snap)
		if o.json {
			err = writeJSON(out, iv, pending)
		} else {
			err = writeText(out, iv, pending)
		}
		if err != nil {
			return err
		}
		pending = pending[:0]
	}
	if err := tr.Close(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if o.svg != "" {
		f, err := os.Create(o.svg)
		if err != nil {
			return err
		}
		if err := writeHeatmap(f, rec); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

// readEvents forwards outlier events until the tracer closes. Events that come faster
// than the terminal takes them are dropped here rather than stall the ring buffer.
func readEvents(tr *bpf.Tracer, to chan<- bpf.Event) {
	for {
		e, err := tr.ReadEvent()
		if err != nil {
			return
		}
		select {
		case to <- e:
		default:
		}
	}
}
