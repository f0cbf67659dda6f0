package group

import (
	"bytes"
	"fmt"
	"slices"

	"sluice/engine/reservation"
)

// Member is one group member as the replicated configuration knows it.
type Member struct {
	ID   uint64 `msgpack:"id" json:"id"`
	Addr string `msgpack:"a" json:"addr"`
	// Learner: the member receives the log but does not vote yet (a joining node until it
	// has caught up).
	Learner bool `msgpack:"l,omitempty" json:"learner,omitempty"`
}

// volume is one volume's replicated record.
type volume struct {
	state reservation.State
	owner uint64
	// index is the log index of the entry that last changed the record.
	index uint64
}

// replicated is the state every member computes from the log: the group configuration
// and the reservation database. It changes only in apply (committed entries, conf changes
// and snapshots), deterministically, so every replica holds the same value at the same
// index. Loop-owned: only the node's loop touches it.
type replicated struct {
	name        string
	bgl         uint64
	members     []Member // sorted by ID
	incarnation uint64
	// decisionTerm is the term of the leader whose incarnation decision was applied last.
	decisionTerm uint64
	// lastPersist is the index of the last applied entry admitted as persistent.
	lastPersist uint64
	vols        map[[16]byte]*volume
	// done records the commands applied last (see AppliedID), appliedIDsKept of them:
	// order lists their IDs in apply order, oldest first from head. horizon is the index
	// of the newest record dropped (0: none), so every command applied after it is in
	// done.
	done    map[EntryID]AppliedID
	order   []EntryID
	head    int
	horizon uint64
}

func newReplicated() *replicated {
	return &replicated{vols: map[[16]byte]*volume{}, done: map[EntryID]AppliedID{}}
}

// AppliedID records one applied command (an entry of a kind that carries a caller's
// command: EntryKind.once), so that a command the log carries twice (a forward the
// origin sent again to a new leader, forward.go) takes effect once: apply skips a
// second copy, and a leader answers a re-sent command from the record instead of
// proposing it again. The record keeps the outcome's code and reservation status but not
// its notices and aborts (More says there were some).
type AppliedID struct {
	ID      EntryID            `msgpack:"id"`
	Index   uint64             `msgpack:"i"`
	Code    Code               `msgpack:"c,omitempty"`
	Status  reservation.Status `msgpack:"s,omitempty"`
	More    bool               `msgpack:"m,omitempty"`
	Persist bool               `msgpack:"p,omitempty"`
}

// appliedIDsKept is how many applied commands the replicated state remembers. It is part
// of the state machine: every replica must drop records at the same index, so a change
// needs a snapshot version change. A command is re-sent within its forwarding deadline
// (two election timeouts), during which a failing-over group applies next to nothing;
// should more than this many commands apply between a command's origin sending it and a
// leader judging a copy of it, the leader answers ErrOutcomeUnknown rather than guess
// (admitOnce).
const appliedIDsKept = 1024

// reply is the answer to a copy of the recorded command, carried by the entry at index.
func (r *AppliedID) reply(index uint64) Reply {
	return Reply{Code: r.Code, Result: reservation.Result{Status: r.Status}, Index: index,
		Partial: r.More}
}

// remember records an applied command, dropping the oldest record beyond appliedIDsKept.
func (s *replicated) remember(r AppliedID) {
	if _, ok := s.done[r.ID]; ok {
		return
	}
	s.done[r.ID] = r
	s.order = append(s.order, r.ID)
	for len(s.order)-s.head > appliedIDsKept {
		old := s.order[s.head]
		s.order[s.head] = EntryID{}
		s.head++
		s.horizon = max(s.horizon, s.done[old].Index)
		delete(s.done, old)
	}
	if s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
}

// appliedRecord returns the record of the command with id, if it applied and is still
// remembered.
func (s *replicated) appliedRecord(id EntryID) (AppliedID, bool) {
	r, ok := s.done[id]
	return r, ok
}

// member returns the member with id, or nil.
func (s *replicated) member(id uint64) *Member {
	i, ok := slices.BinarySearchFunc(s.members, id, func(m Member, id uint64) int {
		return cmpU64(m.ID, id)
	})
	if !ok {
		return nil
	}
	return &s.members[i]
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// isVoter reports whether id is a voting member.
func (s *replicated) isVoter(id uint64) bool {
	m := s.member(id)
	return m != nil && !m.Learner
}

// voters returns the voting members' IDs in ID order.
func (s *replicated) voters() []uint64 {
	var out []uint64
	for _, m := range s.members {
		if !m.Learner {
			out = append(out, m.ID)
		}
	}
	return out
}

// setMember adds or updates a member (conf change apply).
func (s *replicated) setMember(id uint64, addr string, learner bool) {
	if m := s.member(id); m != nil {
		if addr != "" {
			m.Addr = addr
		}
		m.Learner = learner
		return
	}
	s.members = append(s.members, Member{ID: id, Addr: addr, Learner: learner})
	slices.SortFunc(s.members, func(a, b Member) int { return cmpU64(a.ID, b.ID) })
}

// removeMember removes a member; a removed BGL leaves the group without one until the
// leader designates another.
func (s *replicated) removeMember(id uint64) {
	s.members = slices.DeleteFunc(s.members, func(m Member) bool { return m.ID == id })
	if s.bgl == id {
		s.bgl = 0
	}
}

// sortedVols returns the volume NGUIDs in byte order: the one order in which replicas
// iterate volumes, so that events and snapshots come out the same everywhere.
func (s *replicated) sortedVols() [][16]byte {
	out := make([][16]byte, 0, len(s.vols))
	for k := range s.vols {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// vol returns the record of v, creating an empty one.
func (s *replicated) vol(v [16]byte) *volume {
	r := s.vols[v]
	if r == nil {
		r = &volume{}
		s.vols[v] = r
	}
	return r
}

// applied is what applying one entry did, for the node to report.
type applied struct {
	result  reservation.Result
	changed [][16]byte // volumes whose record changed, in byte order
	cause   Cause
	err     error // the entry was refused at apply (an invalid designation, say)
	// dup is set when the entry's command had applied already (at dup.Index): the entry
	// changed nothing.
	dup *AppliedID
}

// apply applies one committed normal entry. It is deterministic: it reads only s and e.
// A command applies at most once: a second entry carrying the same ID changes nothing.
func (s *replicated) apply(e *Entry, index uint64) applied {
	once := e.Kind.once() && e.ID != (EntryID{})
	if once {
		if r, ok := s.done[e.ID]; ok {
			return applied{dup: &r}
		}
	}
	out := s.applyEntry(e, index)
	if once {
		s.remember(AppliedID{ID: e.ID, Index: index, Code: codeOf(out.err),
			Status: out.result.Status, Persist: e.Persist,
			More: len(out.result.Notices) > 0 || len(out.result.Aborts) > 0})
	}
	return out
}

// applyEntry applies e's change to the state.
func (s *replicated) applyEntry(e *Entry, index uint64) applied {
	if e.Persist {
		s.lastPersist = index
	}
	switch e.Kind {
	case EntryReserve:
		r := s.vol(e.Vol)
		res := r.state.Apply(e.Cmd)
		out := applied{result: res, cause: CauseCommand}
		if res.Status == reservation.StatusOK {
			r.index = index
			out.changed = [][16]byte{e.Vol}
		}
		return out
	case EntryClear:
		r := s.vol(e.Vol)
		res := clearState(&r.state, e.Force)
		r.index = index
		return applied{result: res, changed: [][16]byte{e.Vol}, cause: CauseClear}
	case EntrySetOwner:
		r := s.vol(e.Vol)
		r.owner, r.index = e.Node, index
		return applied{changed: [][16]byte{e.Vol}, cause: CauseOwner}
	case EntryDesignate:
		if e.Node != 0 && !s.isVoter(e.Node) {
			return applied{err: fmt.Errorf("designate bgl %d: not a voting member: %w", e.Node, ErrInvalid)}
		}
		s.bgl = e.Node
		return applied{}
	case EntryName:
		if s.name != "" && s.name != e.Name {
			return applied{err: fmt.Errorf("name group %q: already named %q: %w", e.Name, s.name, ErrExists)}
		}
		s.name = e.Name
		return applied{}
	case EntryConfirm:
		s.decisionTerm = e.Term
		return applied{}
	case EntryPowerCycle:
		s.incarnation++
		s.decisionTerm = e.Term
		out := applied{cause: CausePowerCycle}
		for _, k := range s.sortedVols() {
			r := s.vols[k]
			r.state = r.state.AfterPowerLoss()
			r.index = index
			out.changed = append(out.changed, k)
		}
		return out
	}
	return applied{err: fmt.Errorf("apply %v: %w", e.Kind, ErrInvalid)}
}

// clearState is reservation_clear: every registration, the reservation and any SCSI-2
// reservation go, as a CLEAR would do them, and every registrant hears of it (NVMe
// Reservation Preempted, SCSI RESERVATIONS PREEMPTED). The generation moves, as on CLEAR.
// Without force, persistence through power loss stays as it was (the setting is the
// host's); force turns it off too.
func clearState(st *reservation.State, force bool) reservation.Result {
	var res reservation.Result
	for _, r := range st.Registrants {
		res.Notices = append(res.Notices, reservation.Notice{Kind: reservation.ReservationPreempted, To: r.Subject})
	}
	*st = reservation.State{Generation: st.Generation + 1, PTPL: st.PTPL && !force,
		IgnoreISID: st.IgnoreISID}
	return res
}

// snapshotVersion is the snapshot data format version.
const snapshotVersion = 1

// SnapshotData is the data of a raft snapshot: the whole replicated state at its index.
// Members and volumes are sorted, so replicas encode equal states to equal bytes.
type SnapshotData struct {
	Version      uint8          `msgpack:"ver"`
	Name         string         `msgpack:"name,omitempty"`
	BGL          uint64         `msgpack:"bgl,omitempty"`
	Members      []Member       `msgpack:"members"`
	Incarnation  uint64         `msgpack:"inc"`
	DecisionTerm uint64         `msgpack:"dterm,omitempty"`
	LastPersist  uint64         `msgpack:"lp,omitempty"`
	Volumes      []VolumeRecord `msgpack:"vols"`
	// AppliedIDs are the remembered applied commands, oldest first; IDHorizon the index of
	// the newest one forgotten.
	AppliedIDs []AppliedID `msgpack:"ids,omitempty"`
	IDHorizon  uint64      `msgpack:"idh,omitempty"`
}

// VolumeRecord is one volume in a snapshot.
type VolumeRecord struct {
	NGUID [16]byte          `msgpack:"id"`
	Owner uint64            `msgpack:"o,omitempty"`
	Index uint64            `msgpack:"i,omitempty"`
	State reservation.State `msgpack:"s"`
}

// maxSnapshotVolumes bounds the volumes a snapshot may hold, maxSnapshotIDs its
// applied-command records (restore keeps the newest appliedIDsKept).
const (
	maxSnapshotVolumes = 1 << 16
	maxSnapshotIDs     = 1 << 16
)

// snapshot captures s.
func (s *replicated) snapshot() *SnapshotData {
	d := &SnapshotData{Version: snapshotVersion, Name: s.name, BGL: s.bgl,
		Members: slices.Clone(s.members), Incarnation: s.incarnation,
		DecisionTerm: s.decisionTerm, LastPersist: s.lastPersist}
	for _, k := range s.sortedVols() {
		r := s.vols[k]
		d.Volumes = append(d.Volumes, VolumeRecord{NGUID: k, Owner: r.owner, Index: r.index,
			State: r.state.Clone()})
	}
	d.IDHorizon = s.horizon
	for _, id := range s.order[s.head:] {
		d.AppliedIDs = append(d.AppliedIDs, s.done[id])
	}
	return d
}

// restore replaces s with the snapshot's state.
func (s *replicated) restore(d *SnapshotData) {
	*s = replicated{name: d.Name, bgl: d.BGL, members: slices.Clone(d.Members),
		incarnation: d.Incarnation, decisionTerm: d.DecisionTerm, lastPersist: d.LastPersist,
		vols: make(map[[16]byte]*volume, len(d.Volumes)), done: map[EntryID]AppliedID{},
		horizon: d.IDHorizon}
	slices.SortFunc(s.members, func(a, b Member) int { return cmpU64(a.ID, b.ID) })
	for _, v := range d.Volumes {
		s.vols[v.NGUID] = &volume{state: v.State.Clone(), owner: v.Owner, index: v.Index}
	}
	for _, r := range d.AppliedIDs {
		s.remember(r)
	}
}

// DecodeSnapshot decodes snapshot data. It never panics; on error the value is zero.
func DecodeSnapshot(b []byte) (SnapshotData, error) {
	var d SnapshotData
	if err := unmarshal(b, &d); err != nil {
		return SnapshotData{}, fmt.Errorf("decode snapshot: %w", err)
	}
	switch {
	case d.Version != snapshotVersion:
		return SnapshotData{}, fmt.Errorf("decode snapshot: version %d, want %d", d.Version, snapshotVersion)
	case len(d.Volumes) > maxSnapshotVolumes:
		return SnapshotData{}, fmt.Errorf("decode snapshot: %d volumes exceed %d", len(d.Volumes), maxSnapshotVolumes)
	case len(d.AppliedIDs) > maxSnapshotIDs:
		return SnapshotData{}, fmt.Errorf("decode snapshot: %d applied commands exceed %d", len(d.AppliedIDs), maxSnapshotIDs)
	case len(d.Name) > maxNameLen:
		return SnapshotData{}, fmt.Errorf("decode snapshot: group name longer than %d", maxNameLen)
	}
	for _, v := range d.Volumes {
		if len(v.State.Registrants) > reservation.MaxRegistrants {
			return SnapshotData{}, fmt.Errorf("decode snapshot: volume %x: %d registrants exceed %d",
				v.NGUID, len(v.State.Registrants), reservation.MaxRegistrants)
		}
	}
	return d, nil
}

// EncodeSnapshot encodes snapshot data.
func EncodeSnapshot(d *SnapshotData) []byte { return marshal(d) }
