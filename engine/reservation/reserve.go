package reservation

// Acquire, release, clear and preempt: the parts NVMe and SCSI share. Callers have checked
// the requester's registration and key; i is its registrant index. They may leave s
// half-changed on failure: Apply works on a clone and drops it.

// acquire is NVMe Acquire and SCSI RESERVE (SPC-4 §5.13.9): create the reservation, or
// succeed without change when the requester already holds one of this type; anything else
// is a conflict (another holder, or the holder asking for another type).
func (s *State) acquire(t Type, i int) Status {
	if s.Type == TypeNone {
		s.Type = t
		s.Registrants[i].Holder = !t.AllRegistrants()
		return StatusOK
	}
	if s.isHolder(i) && s.Type == t {
		return StatusOK
	}
	return StatusConflict
}

// release is NVMe Release and SCSI RELEASE (SPC-4 §5.13.11.2.2): a no-op from a
// registrant that does not hold the reservation (or when there is none); from the holder
// the type and scope must match. Under the all-registrants types every registrant holds
// it, so any of them may release it for all (libiscsi ProutReserve.Ownership*AR).
func (s *State) release(t Type, scope uint8, i int) Result {
	if !s.isHolder(i) {
		return Result{}
	}
	if t != s.Type || scope != 0 {
		return fail(StatusInvalidRelease)
	}
	old := s.Type
	s.Type = TypeNone
	s.Registrants[i].Holder = false
	var r Result
	if old.registrantsAccess() {
		s.notifyOthers(&r, ReservationReleased, i)
	}
	return r
}

// clear is NVMe Clear and SCSI CLEAR (SPC-4 §5.13.11.2.7): drop the reservation and every
// registration, telling every other registrant.
func (s *State) clear(i int) Result {
	var r Result
	s.notifyOthers(&r, ReservationPreempted, i)
	s.Registrants = nil
	s.Type = TypeNone
	return r
}

func (s *State) notifyOthers(r *Result, k NoticeKind, i int) {
	for j, o := range s.Registrants {
		if j != i {
			r.notify(k, o.Subject)
		}
	}
}

// preempt is NVMe Preempt (and Abort) and SCSI PREEMPT (AND ABORT), SPC-4 Table 72 and
// Figure 9, which the NVMe spec follows:
//   - no reservation: remove the registrations with the key;
//   - all-registrants type: key 0 takes the reservation and removes everyone else; any
//     other key removes those registrations;
//   - one-holder type: the holder's key takes the reservation (even from oneself, to change
//     its type) and removes the others with that key; key 0 is invalid; any other key
//     removes those registrations.
//
// NVMe Preempt with PRKEY=0 under a one-holder type answers Invalid Field here, as the NVMe
// spec and nvmet do (SPDK answers Conflict); SCSI's INVALID FIELD IN PARAMETER LIST is the
// same outcome. Removing registrations ignores type and scope (SPC-4 §5.13.11.2.5), so only
// a takeover validates them.
func (s *State) preempt(t Type, scope uint8, key uint64, i int, abort bool) Result {
	switch {
	case s.Type == TypeNone:
		return s.removeByKey(key, i, abort)
	case s.Type.AllRegistrants():
		if key == 0 {
			return s.takeOver(t, scope, i, abort, func(Registrant) bool { return true })
		}
		return s.removeByKey(key, i, abort)
	}
	switch h := s.holder(); {
	case h < 0:
		// Unreachable while the invariants hold; answer as if there were no reservation
		// rather than index out of range on a state restored from a damaged snapshot.
		return s.removeByKey(key, i, abort)
	case key == s.Registrants[h].Key:
		return s.takeOver(t, scope, i, abort, func(r Registrant) bool { return r.Key == key })
	case key == 0:
		return fail(StatusInvalidParameterList)
	}
	return s.removeByKey(key, i, abort)
}

// removeByKey removes every registration with key, the requester's own included (SPC-4
// §5.13.11.2.5: "The registration is removed", without a notice to the requester). A key
// that matches nobody is a conflict, as in SPC-4 and nvmet (SPDK does not check when
// there is no reservation).
func (s *State) removeByKey(key uint64, i int, abort bool) Result {
	var r Result
	kept := s.Registrants[:0]
	for j, reg := range s.Registrants {
		if reg.Key != key {
			kept = append(kept, reg)
			continue
		}
		if j != i {
			r.notify(RegistrationPreempted, reg.Subject)
		}
		if abort {
			r.Aborts = append(r.Aborts, reg.Subject)
		}
	}
	if len(kept) == len(s.Registrants) {
		return fail(StatusConflict)
	}
	s.Registrants = kept
	if s.Type.AllRegistrants() && len(kept) == 0 {
		s.Type = TypeNone
	}
	return r
}

// takeOver makes the requester the holder of a new reservation of type t, removing the
// registrations victim selects (never the requester's). If the type changed, the
// registrants that remain hear that the old reservation was released (SPC-4
// §5.13.11.2.4.3 f; nvmet and SPDK send the NVMe notice the same way).
func (s *State) takeOver(t Type, scope uint8, i int, abort bool,
	victim func(Registrant) bool) Result {
	if !t.Valid() || scope != 0 {
		return fail(StatusInvalidField)
	}
	var r Result
	old, me := s.Type, -1
	kept := s.Registrants[:0]
	for j, reg := range s.Registrants {
		reg.Holder = false
		if j != i && victim(reg) {
			r.notify(RegistrationPreempted, reg.Subject)
			if abort {
				r.Aborts = append(r.Aborts, reg.Subject)
			}
			continue
		}
		if j == i {
			me = len(kept)
		}
		kept = append(kept, reg)
	}
	s.Registrants = kept
	s.Type = t
	s.Registrants[me].Holder = !t.AllRegistrants()
	if old != t {
		s.notifyOthers(&r, ReservationReleased, me)
	}
	return r
}
