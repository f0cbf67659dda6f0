package bench

import (
	"context"
	"fmt"
)

// Initiator drives targets of one protocol. The same initiator drives every target of
// a comparison, and every figure names the initiator that produced it.
type Initiator interface {
	Name() string
	// Supports says whether it can drive this protocol and workload; why not if not.
	Supports(protocol string, w Workload) (bool, string)
	// Open prepares conns connections to a started target for a run of points.
	Open(ctx context.Context, ep Endpoint, conns int) (Session, error)
}

// Session runs points over one set of connections.
type Session interface {
	// MaxQD is what "max" means for this target and initiator.
	MaxQD() int
	Run(ctx context.Context, w Workload, qd int, tm Timing) (Sample, error)
	Close()
}

// goInitiator is the project's NVMe/TCP initiator, in this process.
type goInitiator struct{}

// NewGoInitiator returns the project's busy-polling NVMe/TCP initiator.
func NewGoInitiator() Initiator { return goInitiator{} }

func (goInitiator) Name() string { return InitiatorGo }

func (goInitiator) Supports(protocol string, _ Workload) (bool, string) {
	return protocol == ProtoNVMeTCP, "speaks NVMe/TCP only"
}

func (goInitiator) Open(ctx context.Context, ep Endpoint, conns int) (Session, error) {
	l, err := DialNVMe(ctx, ep.Addr, ep.Name, 1, conns)
	if err != nil {
		return nil, err
	}
	return &goSession{l: l, pid: ep.PID}, nil
}

type goSession struct {
	l   *NVMeLoad
	pid int
}

func (s *goSession) MaxQD() int { return s.l.MaxQD }
func (s *goSession) Close()     { s.l.Close() }
func (s *goSession) Run(ctx context.Context, w Workload, qd int, tm Timing) (Sample, error) {
	return s.l.Run(ctx, w, qd, tm, s.pid)
}

// rawInitiator is the limit's client; it drives only the limit server.
type rawInitiator struct{}

// NewRawInitiator returns the raw-socket limit's client.
func NewRawInitiator() Initiator { return rawInitiator{} }

func (rawInitiator) Name() string { return InitiatorRaw }

func (rawInitiator) Supports(protocol string, _ Workload) (bool, string) {
	return protocol == ProtoRaw, "drives the limit server only"
}

func (rawInitiator) Open(ctx context.Context, ep Endpoint, conns int) (Session, error) {
	l, err := DialRaw(ctx, ep.Addr, conns)
	if err != nil {
		return nil, fmt.Errorf("limit: %w", err)
	}
	return &rawSession{l: l, ep: ep}, nil
}

type rawSession struct {
	l  *RawLoad
	ep Endpoint
}

func (s *rawSession) MaxQD() int { return s.ep.MaxQD }
func (s *rawSession) Close()     { s.l.Close() }
func (s *rawSession) Run(ctx context.Context, w Workload, qd int, tm Timing) (Sample, error) {
	return s.l.Run(ctx, w, qd, tm, s.ep.PID)
}
