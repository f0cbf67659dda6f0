package bpf

// The programs are compiled by bpf2go into sluice_x86_bpfel.{go,o}, which are committed:
// building sluice needs no clang. gen.sh holds the flags; `make bpf-check` runs it with
// --check and fails when the committed files are stale.
//
//go:generate ./gen.sh
