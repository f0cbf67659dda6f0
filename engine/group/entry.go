package group

import (
	"fmt"
	"strconv"

	"sluice/engine/reservation"
)

// EntryID names one proposal for as long as the log may hold it: the node that made it,
// that node's boot count (persisted and bumped at every Open, so that sequence numbers
// never repeat across restarts) and a sequence number. Waiters find their result by it.
type EntryID struct {
	Node uint64 `msgpack:"n"`
	Boot uint64 `msgpack:"b"`
	Seq  uint64 `msgpack:"s"`
}

// String formats the ID for logs.
func (id EntryID) String() string {
	return strconv.FormatUint(id.Node, 10) + "." + strconv.FormatUint(id.Boot, 10) + "." +
		strconv.FormatUint(id.Seq, 10)
}

// EntryKind is what a normal log entry does to the replicated state.
type EntryKind uint8

// Entry kinds. Membership changes are raft conf change entries (with a ConfContext), not
// these.
const (
	entryNone EntryKind = iota
	// EntryReserve applies Cmd to volume Vol's reservation.State.
	EntryReserve
	// EntryClear is the operator's reservation_clear: every registration and the
	// reservation go; Force also turns persistence off.
	EntryClear
	// EntrySetOwner names Node as the owner (the exporting node) of volume Vol.
	EntrySetOwner
	// EntryDesignate makes Node the backup group leader (0: none).
	EntryDesignate
	// EntryName names the group: a standalone node becomes a group of one.
	EntryName
	// EntryConfirm is a new leader's decision that the group incarnation lives on.
	EntryConfirm
	// EntryPowerCycle is a new leader's decision that the whole group restarted: the
	// incarnation moves on and every volume takes reservation.State.AfterPowerLoss.
	EntryPowerCycle
	entryKindCount
)

var entryKindNames = [entryKindCount]string{"none", "reserve", "clear", "set owner",
	"designate bgl", "name", "confirm incarnation", "power cycle"}

// String names the kind for logs.
func (k EntryKind) String() string {
	if k >= entryKindCount {
		return "entry kind " + strconv.Itoa(int(k))
	}
	return entryKindNames[k]
}

// once reports whether entries of kind k carry a caller's command (Op.once), which the
// state machine applies at most once per EntryID (AppliedID).
func (k EntryKind) once() bool {
	switch k {
	case EntryReserve, EntryClear, EntrySetOwner, EntryDesignate:
		return true
	}
	return false
}

// Entry is the data of a normal raft log entry. Apply reads only the fields its Kind uses;
// every replica applies the same bytes, so every replica computes the same Result.
type Entry struct {
	Kind EntryKind `msgpack:"k"`
	ID   EntryID   `msgpack:"id"`
	Vol  [16]byte  `msgpack:"v"`
	// Cmd is EntryReserve's command.
	Cmd reservation.Command `msgpack:"c"`
	// Persist is the group leader's verdict at proposal time: the command asked to persist
	// and was admitted under the admission rule. Replicas record the index of the last
	// such entry, the "entries that matter" when judging the BGL.
	Persist bool `msgpack:"p,omitempty"`
	// Node is EntrySetOwner's owner and EntryDesignate's BGL.
	Node uint64 `msgpack:"o,omitempty"`
	// Force is EntryClear's flag.
	Force bool `msgpack:"f,omitempty"`
	// Name is EntryName's group name.
	Name string `msgpack:"m,omitempty"`
	// Term is the deciding leader's term (EntryConfirm, EntryPowerCycle).
	Term uint64 `msgpack:"t,omitempty"`
}

// maxNameLen bounds a group name.
const maxNameLen = 64

// validate rejects entries no correct node proposes.
func (e *Entry) validate() error {
	switch {
	case e.Kind == entryNone || e.Kind >= entryKindCount:
		return fmt.Errorf("unknown entry kind %d", e.Kind)
	case len(e.Name) > maxNameLen:
		return fmt.Errorf("group name longer than %d bytes", maxNameLen)
	case len(e.Cmd.TransportIDs) > reservation.MaxRegistrants:
		return fmt.Errorf("%d transport IDs exceed %d", len(e.Cmd.TransportIDs), reservation.MaxRegistrants)
	}
	return nil
}

// DecodeEntry decodes a normal log entry's data. It never panics; on error the Entry is
// the zero value.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("decode log entry: %w", err)
	}
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("decode log entry: %w", err)
	}
	return e, nil
}

// EncodeEntry encodes a log entry.
func EncodeEntry(e *Entry) []byte { return marshal(e) }

// ConfContext is the Context of a raft conf change entry: the proposal's ID (so that its
// waiter finds it) and the member's peer address (so that every replica learns it from the
// log).
type ConfContext struct {
	ID   EntryID `msgpack:"id"`
	Addr string  `msgpack:"a,omitempty"`
}

// maxAddrLen bounds a peer address (host:port).
const maxAddrLen = 256

// DecodeConfContext decodes a conf change context. It never panics; on error the value is
// zero.
func DecodeConfContext(b []byte) (ConfContext, error) {
	var c ConfContext
	if err := unmarshal(b, &c); err != nil {
		return ConfContext{}, fmt.Errorf("decode conf change context: %w", err)
	}
	if len(c.Addr) > maxAddrLen {
		return ConfContext{}, fmt.Errorf("decode conf change context: address longer than %d", maxAddrLen)
	}
	return c, nil
}

// EncodeConfContext encodes a conf change context.
func EncodeConfContext(c *ConfContext) []byte { return marshal(c) }
