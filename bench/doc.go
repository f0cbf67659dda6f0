// Package bench is sluice's benchmark harness: it runs a 4 KiB random-read load at
// fixed queue depths against a target process pinned to one core, from a client
// pinned to the other, and measures in the same run a raw-socket limit (a minimal
// server on one pinned OS thread, outside Go's netpoller, that answers each 72-byte
// request with 4 KiB in one writev and does no protocol work at all).
//
// The point is the ratio sluice/limit measured back to back on the same machine:
// these machines are shared and noisy, so absolute figures mean little and ratios
// from one run mean more. Results print as a table and as Go benchmark lines that
// benchstat can compare across runs.
//
// Who calls it: `make bench` (bench/cmd/sluicebench). Nothing in engine/ imports it.
package bench
