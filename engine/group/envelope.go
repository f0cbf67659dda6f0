package group

import (
	"fmt"
	"strconv"

	"sluice/engine/reservation"
)

// EnvelopeKind says what an Envelope carries.
type EnvelopeKind uint8

// Envelope kinds.
const (
	envNone EnvelopeKind = iota
	// EnvRaft carries one raft message (Raft: raftpb.Message protobuf bytes).
	EnvRaft
	// EnvRequest carries a command or operation for the group leader (Request).
	EnvRequest
	// EnvReply answers an EnvRequest (Reply), sent to the request's ReplyAddr.
	EnvReply
	// EnvReport tells the leader which incarnation the sender holds in memory (Held) and
	// which it has applied (Incarnation), in term Term.
	EnvReport
	// EnvConfirm is the leader's answer to a report once it has decided: the sender may
	// hold Incarnation, confirmed in term Term.
	EnvConfirm
	// EnvInvite tells a standalone node that the group named Group added it (To) as a
	// member: it wipes its raft state and waits for the leader's snapshot.
	EnvInvite
	envKindCount
)

var envKindNames = [envKindCount]string{"none", "raft", "request", "reply", "report",
	"confirm", "invite"}

// String names the kind for logs.
func (k EnvelopeKind) String() string {
	if k >= envKindCount {
		return "envelope kind " + strconv.Itoa(int(k))
	}
	return envKindNames[k]
}

// Envelope is one message between group nodes. The transport frames it (codec.go:
// 4-byte big-endian length, then msgpack) and never looks inside.
type Envelope struct {
	Kind EnvelopeKind `msgpack:"k"`
	From uint64       `msgpack:"f"`
	// To is the destination node ID; 0 when the sender does not know it (a join request
	// sent to an address).
	To uint64 `msgpack:"t"`
	// FromAddr is the sender's peer address, so that a node not yet in the sender's
	// membership can answer.
	FromAddr string `msgpack:"a,omitempty"`

	Raft    []byte   `msgpack:"r,omitempty"`
	Request *Request `msgpack:"q,omitempty"`
	Reply   *Reply   `msgpack:"p,omitempty"`

	Term        uint64 `msgpack:"term,omitempty"`
	Held        uint64 `msgpack:"held,omitempty"`
	Incarnation uint64 `msgpack:"inc,omitempty"`
	Group       string `msgpack:"g,omitempty"`
}

// Op is what a Request asks of the group leader.
type Op uint8

// Ops.
const (
	opNone Op = iota
	OpReserve
	OpClear
	OpSetOwner
	OpDesignate
	OpAddMember
	OpRemoveMember
	OpStatus
	opCount
)

var opNames = [opCount]string{"none", "reserve", "clear", "set owner", "designate bgl",
	"add member", "remove member", "status"}

// once reports whether op's entry is applied at most once per EntryID (EntryKind.once),
// so that its origin may send it again to a new leader when the one it asked was lost
// (forward.go). OpStatus reads and changes nothing, so it may always be asked again.
func (o Op) once() bool {
	switch o {
	case OpReserve, OpClear, OpSetOwner, OpDesignate:
		return true
	}
	return false
}

// String names the op for logs.
func (o Op) String() string {
	if o >= opCount {
		return "op " + strconv.Itoa(int(o))
	}
	return opNames[o]
}

// Request is a command forwarded to the group leader. ID is the origin's proposal ID: the
// leader proposes under it, so the origin recognises the entry when it applies it.
type Request struct {
	ID    EntryID             `msgpack:"id"`
	Op    Op                  `msgpack:"o"`
	Vol   [16]byte            `msgpack:"v"`
	Cmd   reservation.Command `msgpack:"c"`
	Node  uint64              `msgpack:"n,omitempty"`
	Addr  string              `msgpack:"a,omitempty"`
	Force bool                `msgpack:"f,omitempty"`
	// ReplyTo and ReplyAddr name the origin: a member that relays a request (a join sent
	// to a follower) keeps them, so the leader answers the origin directly.
	ReplyTo   uint64 `msgpack:"rt"`
	ReplyAddr string `msgpack:"ra"`
	// Since is the origin's commit index when the command was first sent: an entry
	// carrying it can only be committed after that index (it did not exist before), so a
	// leader that remembers every command applied after Since (AppliedID) knows whether
	// it applied.
	Since uint64 `msgpack:"si,omitempty"`
	// Resent: the origin sent the command to an earlier leader that never answered (that
	// leader may have put it in the log). Try numbers the origin's attempts; the reply
	// echoes it, so that the origin tells a refusal of its latest attempt from a late one.
	// Term is the origin's raft term when it sent this attempt: a leader of a later term
	// refuses it, so an attempt can be put in the log only in the term it was sent in
	// (a transport that queued it through an outage cannot slip it into a later one).
	Resent bool   `msgpack:"rs,omitempty"`
	Try    uint32 `msgpack:"tr,omitempty"`
	Term   uint64 `msgpack:"te,omitempty"`
}

// Reply answers a Request. Code is CodeOK or the refusal; Index is the log index of the
// entry that carried the command, which the origin waits to apply before it answers its
// caller.
type Reply struct {
	ID     EntryID            `msgpack:"id"`
	Code   Code               `msgpack:"c"`
	Msg    string             `msgpack:"m,omitempty"`
	Result reservation.Result `msgpack:"r"`
	Index  uint64             `msgpack:"i,omitempty"`
	Group  string             `msgpack:"g,omitempty"`
	Status *Status            `msgpack:"s,omitempty"`
	// Partial: the command had applied already (a copy sent again), and Result holds only
	// its status; the notices and aborts of its result are not known here (AppliedID).
	Partial bool `msgpack:"pa,omitempty"`
	// Try is the Request's.
	Try uint32 `msgpack:"tr,omitempty"`
}

// maxEnvelopeStrings bounds the strings of an envelope.
const maxEnvelopeStrings = 4096

func (env *Envelope) validate() error {
	switch {
	case env.Kind == envNone || env.Kind >= envKindCount:
		return fmt.Errorf("unknown envelope kind %d", env.Kind)
	case len(env.FromAddr) > maxAddrLen:
		return fmt.Errorf("address longer than %d", maxAddrLen)
	case len(env.Group) > maxNameLen:
		return fmt.Errorf("group name longer than %d", maxNameLen)
	}
	if q := env.Request; q != nil {
		if q.Op == opNone || q.Op >= opCount {
			return fmt.Errorf("unknown request op %d", q.Op)
		}
		if len(q.Addr) > maxAddrLen || len(q.ReplyAddr) > maxAddrLen {
			return fmt.Errorf("request address longer than %d", maxAddrLen)
		}
	}
	if p := env.Reply; p != nil {
		if p.Code >= codeCount {
			return fmt.Errorf("unknown reply code %d", p.Code)
		}
		if len(p.Msg) > maxEnvelopeStrings {
			return fmt.Errorf("reply message longer than %d", maxEnvelopeStrings)
		}
	}
	return nil
}

// DecodeEnvelope decodes an envelope's msgpack body. It never panics; on error the
// Envelope is the zero value. The raft message inside (Raft) is decoded by the node.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var env Envelope
	if err := unmarshal(b, &env); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	if err := env.validate(); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	return env, nil
}

// EncodeEnvelope encodes an envelope's body (without the frame header).
func EncodeEnvelope(env *Envelope) []byte { return marshal(env) }

// AppendFrame appends env as one frame (length prefix and body) to dst.
func AppendFrame(dst []byte, env *Envelope) []byte { return appendFrame(dst, env) }
