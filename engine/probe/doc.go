// Package probe holds sluice's probe sites: the places where the data path and, later,
// replication tell an attached eBPF tracer (sluice/bpf, read by tools/sluicetrace) that
// something happened. It is the USDT of a Go binary that has no USDT notes.
//
// What it owns:
//   - the sites: tiny assembly stubs (stubs_amd64.s) whose first instruction is the
//     5-byte NOP (0f 1f 44 00 00) followed by RET. A uprobe there costs about 2 µs a hit
//     on this kernel (a NOP needs no single-step), where a uprobe on an ordinary Go
//     function entry costs about 35 µs; with nothing attached a call costs a few ns.
//     Uretprobes are never used: they rewrite the return address, which Go's stack
//     copying and traceback do not survive.
//   - the gates: one 16-bit semaphore per group of sites (I/O, replication) in the
//     statically initialised variable `sites` (so in .noptrdata, a file-backed page of
//     the binary). The tracer attaches its uprobes with the semaphore's file offset as
//     the uprobe's ref_ctr_offset (perf_event_open config2), so the kernel itself
//     raises the semaphore when it installs the breakpoint and lowers it when the last
//     probe goes, even if the tracer is killed. No ELF note is needed: the tracer finds
//     `sites` in the symbol table. With nobody listening, a site costs one load and one
//     not-taken branch (IOEnabled, ReplEnabled), and the arguments are not evaluated.
//   - sampling: a tracer asks for 1 command in N by writing a threshold (2^32/N - 1) into
//     `sites` through /proc/PID/mem before it attaches. Whether a command is sampled is a
//     pure function of its key (a hash compared with the threshold), so the start and
//     the end of one command, or the send and the ack of one frame, always agree, with
//     no per-command state and no shared counter. N=1 samples everything.
//
// The ABI (what sluice/bpf reads): stubs are ABI0 assembly functions, so Go calls them
// through the compiler's ABIInternal→ABI0 wrapper and the arguments arrive on the
// stack. At the uprobe (function entry, before any frame) 0(SP) is the return address
// and the arguments are the 8-byte words from 8(SP) on, in declaration order, a string
// taking two words (data pointer, length). The ELF symbols carry the linker's ".abi0"
// suffix (SiteSymbolPrefix + name + ".abi0"). The layout of `sites` is the Offset*
// constants, checked by a test. Sites:
//
//	io_start(vol string, reactor int, key uint64, arrivalNs int64, waitedNs int64)
//	io_done(vol string, reactor int, key uint64, arrivalNs int64, status int64)
//	repl_send(vol string, partner string, seq uint64)
//	repl_ack(vol string, partner string, seq uint64)
//	journal_enqueue(vol string, seq uint64)
//	journal_dequeue(vol string, seq uint64)
//
// Who may call it: any package of the engine (it imports nothing of sluice, so that
// bdev, nvmf, iscsi and replication can all call it), from any goroutine. The sites
// never allocate, block or fail; a site called with no tracer does nothing.
//
// What it must never do: import another sluice package, allocate, or turn on by itself:
// only the kernel (ref_ctr) or a tracer writing /proc/PID/mem changes `sites`. Built
// with -tags sluice_noprobe the gates are constant false and the compiler removes the
// sites, which is how the benchmarks show that the sites cost nothing when unattached.
package probe
