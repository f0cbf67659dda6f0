package reservation

import "sluice/engine/proto/nvme"

// NVMe reservation commands (Base §8.19, NVM §3.2). Order of checks: fields of the command
// itself first (they are wrong whatever the state), then a SCSI-2 reservation (which makes
// every persistent reservation command conflict), then the requester's registration and
// key, then the action.

func (s *State) applyNVMe(c *Command) Result {
	switch c.Action {
	case NVMeRegister, NVMeUnregister, NVMeReplace:
		return s.nvmeRegister(c)
	case NVMeAcquire, NVMePreempt, NVMePreemptAbort:
		// IEKEY=1 is Invalid Field for Acquire and Release since NVMe 1.3 (RESCAP bit 7),
		// as in SPDK and nvmet; so is a reserved RTYPE, checked for every acquire action.
		if c.IEKEY || !c.Type.Valid() {
			return fail(StatusInvalidField)
		}
	case NVMeRelease, NVMeClear:
		if c.IEKEY {
			return fail(StatusInvalidField)
		}
	}
	if s.SCSI2.Held {
		return fail(StatusConflict)
	}
	i := s.find(c.From)
	if i < 0 || s.Registrants[i].Key != c.Key {
		return fail(StatusConflict)
	}
	switch c.Action {
	case NVMeAcquire:
		return Result{Status: s.acquire(c.Type, i)}
	case NVMePreempt, NVMePreemptAbort:
		// A failed preempt's generation bump dies with Apply's clone.
		s.Generation++
		return s.preempt(c.Type, 0, c.ServiceKey, i, c.Action == NVMePreemptAbort)
	case NVMeRelease:
		return s.release(c.Type, 0, i)
	}
	s.Generation++
	return s.clear(i)
}

// nvmeRegister handles the three register actions, which share CPTPL and the generation
// rule.
func (s *State) nvmeRegister(c *Command) Result {
	if c.CPTPL == nvme.CPTPLReserved || c.CPTPL > nvme.CPTPLSet {
		return fail(StatusInvalidField)
	}
	// A zero NRKEY would register nothing a preempt or report could tell from "no key"
	// (SPDK answers Invalid Field; keys are nonzero everywhere in this package).
	if c.Action != NVMeUnregister && c.ServiceKey == 0 {
		return fail(StatusInvalidField)
	}
	if s.SCSI2.Held {
		return fail(StatusConflict)
	}
	var r Result
	i := s.find(c.From)
	switch {
	case c.Action == NVMeRegister && i < 0:
		r.Status = s.register(Subject{ID: c.From}, c.ServiceKey)
	case c.Action == NVMeRegister:
		// Registering again with the same key succeeds; another key is a conflict.
		if s.Registrants[i].Key != c.ServiceKey {
			r.Status = StatusConflict
		}
	case i < 0 && c.Action == NVMeReplace && c.IEKEY:
		// Replace with IEKEY from an unregistered host registers it, as SPDK does and
		// as SCSI's REGISTER AND IGNORE EXISTING KEY does (nvmet answers Conflict).
		r.Status = s.register(Subject{ID: c.From}, c.ServiceKey)
	case i < 0 || !c.IEKEY && s.Registrants[i].Key != c.Key:
		r.Status = StatusConflict
	case c.Action == NVMeReplace:
		s.Registrants[i].Key = c.ServiceKey
	default:
		s.unregister(i, &r)
	}
	if r.Status != StatusOK {
		return r
	}
	switch c.CPTPL {
	case nvme.CPTPLClear:
		s.PTPL = false
	case nvme.CPTPLSet:
		s.PTPL = true
	}
	s.Generation++
	return r
}
