package probe

// The stubs are in stubs_amd64.s. noescape: they only let the kernel read their
// arguments, so a string passed to a site stays where it is.

//go:noescape
func ioStart(vol string, reactor int, key uint64, arrivalNs, waitedNs int64)

//go:noescape
func ioDone(vol string, reactor int, key uint64, arrivalNs, status int64)

//go:noescape
func replSend(vol, partner string, seq uint64)

//go:noescape
func replAck(vol, partner string, seq uint64)

//go:noescape
func journalEnqueue(vol string, seq uint64)

//go:noescape
func journalDequeue(vol string, seq uint64)

// stubPCs fills pcs with the stubs' addresses in the order of Sites (tests only).
//
//go:noescape
func stubPCs(pcs *[6]uintptr)

// stubAddrs holds the stubs' addresses, taken at init: the reference keeps every stub
// in the binary, which the linker would otherwise drop while a site has no caller (the
// replication sites, until engine/replication calls them), and a tracer attaches to all.
var stubAddrs [6]uintptr

func init() { stubPCs(&stubAddrs) }
