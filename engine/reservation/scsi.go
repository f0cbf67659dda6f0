package reservation

// SCSI PERSISTENT RESERVE OUT (SPC-4 §6.16) and the SCSI-2 RESERVE/RELEASE exceptions
// (§5.13.3). Order of checks: parameter-data misuse and CDB fields first, then a SCSI-2
// reservation (every PERSISTENT RESERVE command conflicts while one exists, "regardless
// of initiator", SPC-2 §5.5.1, as LIO does), then registration and key (Table 66), then
// the service action.

func (s *State) applySCSI(c *Command) Result {
	if c.SpecIPT && c.Action != SCSIRegister {
		// SPC-4 §6.16.3: SPEC_I_PT is valid for REGISTER only.
		return fail(StatusInvalidParameterList)
	}
	if c.Action == SCSIReserve && (!c.Type.Valid() || c.Scope != 0) {
		return fail(StatusInvalidField)
	}
	if s.SCSI2.Held {
		return fail(StatusConflict)
	}
	i := s.find(c.From)
	if c.Action == SCSIRegister || c.Action == SCSIRegisterIgnore {
		return s.scsiRegister(c, i)
	}
	// Every other service action needs a registered nexus and its key (§6.16.3).
	if i < 0 || s.Registrants[i].Key != c.Key {
		return fail(StatusConflict)
	}
	switch c.Action {
	case SCSIReserve:
		return Result{Status: s.acquire(c.Type, i)}
	case SCSIRelease:
		return s.release(c.Type, c.Scope, i)
	case SCSIClear:
		s.Generation++
		return s.clear(i)
	case SCSIPreempt, SCSIPreemptAbort:
		s.Generation++
		return s.preempt(c.Type, c.Scope, c.ServiceKey, i, c.Action == SCSIPreemptAbort)
	}
	return s.registerMove(c, i)
}

// scsiRegister is REGISTER and REGISTER AND IGNORE EXISTING KEY, SPC-4 Tables 67 and 68.
// APTPL is processed on every successful registration change ("the last valid APTPL
// value", §5.13.5.1); the do-nothing case changes nothing, APTPL included.
func (s *State) scsiRegister(c *Command, i int) Result {
	ignoreKey := c.Action == SCSIRegisterIgnore
	var r Result
	switch {
	case i >= 0 && !ignoreKey && s.Registrants[i].Key != c.Key:
		return fail(StatusConflict)
	case i >= 0 && c.SpecIPT:
		return fail(StatusInvalidParameterList)
	case i >= 0 && c.ServiceKey == 0:
		s.unregister(i, &r)
	case i >= 0:
		// ALL_TG_PT is not re-applied to an existing registration: it changes the key only.
		s.Registrants[i].Key = c.ServiceKey
	case !ignoreKey && c.Key != 0:
		return fail(StatusConflict)
	case c.ServiceKey == 0:
		return Result{} // "Do nothing except return GOOD status."
	default:
		if st := s.registerNew(c); st != StatusOK {
			return fail(st)
		}
	}
	s.PTPL = c.APTPL
	s.Generation++
	return r
}

// registerNew registers the requester's nexus (on every target port with ALL_TG_PT) and,
// with SPEC_I_PT, each TransportID's initiator port on the requester's target port (or on
// every one). A specified port that is already registered, or that overlaps another
// specified one, is INVALID FIELD IN PARAMETER LIST (Table 67 note b); an exact repeat is
// skipped. All or nothing: a failure drops Apply's clone.
func (s *State) registerNew(c *Command) Status {
	subs := []Subject{{ID: c.From, AllTargetPorts: c.AllTargetPorts}}
	if c.SpecIPT {
		for _, t := range c.TransportIDs {
			subs = append(subs, t.subject(c.From.TargetPort, c.AllTargetPorts))
		}
	}
	for k, sub := range subs {
		if repeated(subs[:k], sub) {
			continue
		}
		if s.findOverlap(sub) >= 0 {
			return StatusInvalidParameterList
		}
		if st := s.register(sub, c.ServiceKey); st != StatusOK {
			return st
		}
	}
	return StatusOK
}

func repeated(subs []Subject, sub Subject) bool {
	for _, o := range subs {
		if o == sub {
			return true
		}
	}
	return false
}

// registerMove is REGISTER AND MOVE, SPC-4 §5.13.8 and Table 70: the holder hands its
// reservation (same type) to another I_T nexus, registering it with the service action
// key, and stays registered unless UNREG.
func (s *State) registerMove(c *Command, i int) Result {
	switch {
	case s.Type == TypeNone:
		return fail(StatusInvalidField) // "no persistent reservation established"
	case s.Type.AllRegistrants() || !s.Registrants[i].Holder:
		return fail(StatusConflict)
	case c.ServiceKey == 0:
		return fail(StatusInvalidParameterList)
	}
	dest := c.MoveTo.subject(c.MoveTargetPort, false)
	// The destination may not be the requester's own initiator port, on any target port.
	anyPort := Subject{ID: dest.ID, AnyISID: dest.AnyISID, AllTargetPorts: true}
	if anyPort.overlaps(Subject{ID: c.From}, s.IgnoreISID) {
		return fail(StatusInvalidParameterList)
	}
	j := s.findOverlap(dest)
	switch {
	case j == i:
		return fail(StatusInvalidParameterList)
	case j < 0:
		if st := s.register(dest, c.ServiceKey); st != StatusOK {
			return fail(st)
		}
		j = len(s.Registrants) - 1
	default:
		// "It is not an error ... to register an I_T nexus that is already registered
		// with the same reservation key or a different reservation key."
		s.Registrants[j].Key = c.ServiceKey
	}
	s.Registrants[i].Holder = false
	s.Registrants[j].Holder = true
	var r Result
	if c.Unreg {
		s.unregister(i, &r) // no longer the holder: nothing is released
	}
	s.PTPL = c.APTPL
	s.Generation++
	return r
}

// scsi2 is RESERVE(6)/(10) and RELEASE(6)/(10) with the SPC-4 §5.13.3 exceptions
// (REPORT CAPABILITIES says CRH=1):
//   - from a persistent reservation holder, or from a registrant while a registrants-only
//     or all-registrants reservation exists: GOOD, and nothing changes;
//   - from any other registrant, or from anyone while registrations exist: RESERVATION
//     CONFLICT (SPC-2 §5.5.1);
//   - otherwise SPC-2: RESERVE conflicts with another nexus's SCSI-2 reservation and is a
//     no-op from its holder; RELEASE from a non-holder is GOOD and releases nothing.
//
// VMware's VMFS falls back to RESERVE(6) without ATS (spdk/spdk#1414), and libiscsi's
// SCSI.Reserve6 suite checks each line above.
func (s *State) scsi2(c *Command) Result {
	if i := s.find(c.From); i >= 0 {
		if s.isHolder(i) || s.Type.registrantsAccess() {
			return Result{}
		}
		return fail(StatusConflict)
	}
	if len(s.Registrants) > 0 {
		return fail(StatusConflict)
	}
	mine := s.SCSI2.Held && s.SCSI2.Holder.Matches(c.From, s.IgnoreISID)
	switch {
	case c.Action == SCSI2Release:
		if mine {
			s.SCSI2 = SCSI2Reservation{}
		}
	case s.SCSI2.Held && !mine:
		return fail(StatusConflict)
	default:
		s.SCSI2 = SCSI2Reservation{Held: true, Holder: c.From}
	}
	return Result{}
}
