package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"

	"sluice/bench"
)

// rerender rebuilds report.md, results.txt and the plots of a results directory from
// its results.json, so that a report made elsewhere can be re-read with this version.
func rerender(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	out := fs.String("out", "bench/out", "results directory")
	_ = fs.Parse(args)
	b, err := os.ReadFile(filepath.Join(*out, "results.json"))
	if err != nil {
		return err
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	ws, err := bench.ParseWorkloads(strings.Join(rep.Matrix.Workloads, ","))
	if err != nil {
		return err
	}
	qds, err := bench.ParseQDs(strings.Join(rep.Matrix.QDs, ","))
	if err != nil {
		return err
	}
	m := &bench.Matrix{Workloads: ws, QDs: qds, Conns: rep.Matrix.Conns}
	rep.Rows = bench.Aggregate(rep.Samples)
	if rep.Plots, err = bench.Plots(*out, rep.Rows, m); err != nil {
		return err
	}
	return rep.Write(*out)
}
