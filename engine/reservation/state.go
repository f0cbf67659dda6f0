package reservation

// MaxRegistrants bounds the registrant table, so that a misbehaving initiator cannot grow
// a volume's replicated state without limit and every report fits its wire format (READ
// FULL STATUS with iSCSI TransportIDs stays well under 64 KiB, NVMe Report under 17 KiB).
// 256 covers a 64-node cluster with four paths each; more answers
// StatusInsufficientResources, as SPC-4 §5.13.7 provides.
const MaxRegistrants = 256

// State is one volume's reservation state. Its fields are exported plain values (slices,
// arrays, strings, integers) with no maps, so that msgpack encodes it deterministically
// for raft snapshots; registrants stay in registration order because reports list them in
// that order and determinism needs one. Change it only through Apply.
//
// Invariants (checked by the property tests):
//   - Every registrant key is nonzero, and no two registrants overlap.
//   - Type == TypeNone: no registrant has Holder set.
//   - Type is an all-registrants type: there is at least one registrant and none has
//     Holder set (all of them hold the reservation).
//   - Any other Type: exactly one registrant has Holder set.
//   - A SCSI-2 reservation and a persistent reservation never coexist, and a SCSI-2
//     reservation exists only while there are no registrants.
//
// The zero value is a volume with no registrations and persistence off.
type State struct {
	// Generation is the NVMe Report GEN and the SCSI PRgeneration: it wraps, and it moves
	// only on the actions listed in [State.Apply].
	Generation  uint32
	Type        Type
	Registrants []Registrant
	// PTPL is persistence through power loss: NVMe PTPLS (set by CPTPL or feature 83h),
	// SCSI "the last valid APTPL value". One flag for both protocols, because there is one
	// reservation to keep or lose.
	PTPL  bool
	SCSI2 SCSI2Reservation
	// IgnoreISID is configuration, set when the volume is created: match SCSI initiators
	// by name only, so registrations survive an ISID change on re-login. Changing it while
	// registrations exist may make two of them overlap.
	IgnoreISID bool
}

// Registrant is one registration.
type Registrant struct {
	Subject Subject
	Key     uint64
	// Holder marks the reservation holder of a type that has one holder. Under the
	// all-registrants types it is never set: every registrant holds the reservation.
	Holder bool
}

// SCSI2Reservation is a SCSI-2 RESERVE(6)/(10) reservation: exclusive to one I_T nexus,
// never persistent, ended by RELEASE, nexus loss or reset.
type SCSI2Reservation struct {
	Held   bool
	Holder Identity
}

// Clone returns a deep copy: Apply works on one so that a failing command leaves the
// original untouched, and a manager may snapshot a State while it keeps applying.
func (s *State) Clone() State {
	c := *s
	c.Registrants = nil
	if len(s.Registrants) > 0 {
		c.Registrants = append([]Registrant(nil), s.Registrants...)
	}
	return c
}

// Apply executes cmd against s and reports the outcome. On any outcome but StatusOK s is
// unchanged. Apply never panics on a well-typed Command, whatever its values: commands
// come from the replicated log, and a bad entry must not stop the group.
//
// The generation moves (by one, wrapping) exactly on successful NVMe Register, Unregister
// and Replace (every one, as the NVMe spec says, even a re-register with the same key),
// NVMe Preempt, Preempt and Abort, and Clear; SCSI REGISTER and REGISTER AND IGNORE
// EXISTING KEY (except the "do nothing" case of an unregistered nexus with a zero service
// action key, SPC-4 Table 67), CLEAR, PREEMPT, PREEMPT AND ABORT and REGISTER AND MOVE.
// Acquire, Release, RESERVE, RELEASE, SCSI-2 commands, Set Features and events leave it.
func (s *State) Apply(cmd Command) Result {
	cmd.From = cmd.From.normalized()
	next := s.Clone()
	r := next.apply(&cmd)
	if r.Status != StatusOK {
		return Result{Status: r.Status}
	}
	if len(next.Registrants) == 0 {
		next.Registrants = nil
	}
	*s = next
	return r
}

func (s *State) apply(c *Command) Result {
	if c.Action == ActionNone || c.Action >= actionCount {
		return fail(StatusInvalidField)
	}
	if p := c.Action.Protocol(); p != ProtocolNone && c.From.Protocol != p {
		return fail(StatusInvalidField)
	}
	switch c.Action {
	case NexusLost:
		if s.SCSI2.Held && s.SCSI2.Holder.Matches(c.From, s.IgnoreISID) {
			s.SCSI2 = SCSI2Reservation{}
		}
		return Result{}
	case ClearSCSI2:
		s.SCSI2 = SCSI2Reservation{}
		return Result{}
	case NVMeSetPTPL:
		s.PTPL = c.PTPL
		return Result{}
	case SCSI2Reserve, SCSI2Release:
		return s.scsi2(c)
	}
	if c.Action.Protocol() == ProtocolNVMe {
		return s.applyNVMe(c)
	}
	return s.applySCSI(c)
}

// find returns the index of the registrant that covers id, or -1.
func (s *State) find(id Identity) int {
	for i := range s.Registrants {
		if s.Registrants[i].Subject.Covers(id, s.IgnoreISID) {
			return i
		}
	}
	return -1
}

// findOverlap returns the index of the first registrant that overlaps sub, or -1.
func (s *State) findOverlap(sub Subject) int {
	for i := range s.Registrants {
		if s.Registrants[i].Subject.overlaps(sub, s.IgnoreISID) {
			return i
		}
	}
	return -1
}

// isHolder reports whether registrant i holds the reservation.
func (s *State) isHolder(i int) bool {
	return s.Type != TypeNone && (s.Type.AllRegistrants() || s.Registrants[i].Holder)
}

// holder returns the index of the single holder of a one-holder type, or -1.
func (s *State) holder() int {
	for i := range s.Registrants {
		if s.Registrants[i].Holder {
			return i
		}
	}
	return -1
}

// Registered reports whether id is covered by a registration.
func (s *State) Registered(id Identity) bool { return s.find(id.normalized()) >= 0 }

// Holds reports whether id holds the persistent reservation (any registrant does, under
// an all-registrants type).
func (s *State) Holds(id Identity) bool {
	i := s.find(id.normalized())
	return i >= 0 && s.isHolder(i)
}

// register appends a registration, or reports that the table is full.
func (s *State) register(sub Subject, key uint64) Status {
	if len(s.Registrants) >= MaxRegistrants {
		return StatusInsufficientResources
	}
	s.Registrants = append(s.Registrants, Registrant{Subject: sub, Key: key})
	return StatusOK
}

// unregister removes registrant i at its own request (NVMe Unregister, SCSI REGISTER
// with a zero service action key, REGISTER AND MOVE's UNREG) and ends the reservation
// where SPC-4 §5.13.11.2.3 and the NVMe spec end it: a one-holder reservation when its
// holder goes, telling the others under a registrants-only type; an all-registrants one
// when the last registrant goes.
func (s *State) unregister(i int, r *Result) {
	wasHolder := s.Registrants[i].Holder
	s.Registrants = append(s.Registrants[:i], s.Registrants[i+1:]...)
	switch {
	case s.Type.AllRegistrants():
		if len(s.Registrants) == 0 {
			s.Type = TypeNone
		}
	case wasHolder:
		t := s.Type
		s.Type = TypeNone
		if t.RegistrantsOnly() {
			for _, o := range s.Registrants {
				r.notify(ReservationReleased, o.Subject)
			}
		}
	}
}

// AfterPowerLoss returns the state a volume comes back with after the whole group lost
// power (a single node's restart loses nothing: the group still holds the state). With
// persistence on, registrations and the reservation survive (SPC-4 §5.13.5.1; NVMe
// PTPLS); with it off, everything is gone. SCSI-2 reservations never survive, and the
// generation restarts at 0 either way ("regardless of the APTPL bit value the generation
// value shall be set to 0 as part of the power on reset process", SPC-3's READ KEYS text as
// drive manuals quote it; SPDK also restores a PTPL namespace with generation 0; NVMe says
// nothing else). IgnoreISID is configuration and stays.
func (s *State) AfterPowerLoss() State {
	if !s.PTPL {
		return State{IgnoreISID: s.IgnoreISID}
	}
	c := s.Clone()
	c.Generation = 0
	c.SCSI2 = SCSI2Reservation{}
	return c
}
