//go:build !amd64

package probe

// Only amd64 has stubs a tracer can attach to; elsewhere the sites do nothing.

func ioStart(vol string, reactor int, key uint64, arrivalNs, waitedNs int64) {}
func ioDone(vol string, reactor int, key uint64, arrivalNs, status int64)    {}
func replSend(vol, partner string, seq uint64)                               {}
func replAck(vol, partner string, seq uint64)                                {}
func journalEnqueue(vol string, seq uint64)                                  {}
func journalDequeue(vol string, seq uint64)                                  {}

func stubPCs(pcs *[6]uintptr) {}
