// Command sluicebench is the benchmark harness's command line (make bench runs it).
//
// With no subcommand it runs the workload matrix against the chosen targets and
// writes a results directory: JSON per point, results.json, report.md, SVG and PNG
// plots, benchstat input, and the packages' microbenchmarks against their baseline.
// Subcommands: "load" drives one running NVMe/TCP target with one point of the
// matrix; "report" re-renders a results directory from its results.json;
// "rawserver" is the raw-socket limit server, re-executed by the harness so that its
// CPU time is its own.
//
// It pins itself to the client core and runs one Go P: the load loops spin on a
// locked thread, and nothing else of the harness runs while they do. Every process
// it starts is stopped by it or dies with it.
package main
