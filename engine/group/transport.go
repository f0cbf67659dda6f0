package group

// Transport carries Envelopes between group nodes. The node calls Send from its loop, so
// Send must never block: it queues and may drop (raft retransmits, and forwarded commands
// have deadlines). Incoming envelopes go to the recv function given to Start, from any
// goroutine; the node posts them to its loop.
//
// Production uses TCPTransport; the simulator provides an in-memory network with seeded
// delays, drops and partitions.
type Transport interface {
	// Start begins delivering envelopes addressed to this node to recv.
	Start(recv func(Envelope)) error
	// Send queues env for the node listening at addr.
	Send(addr string, env Envelope)
	// Close stops the transport; no recv call starts after it returns.
	Close() error
}
