package scsi

import (
	"encoding/hex"
	"errors"

	"sluice/engine/proto/scsi"
	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
)

// Reservations: SCSI-3 persistent reservations (PERSISTENT RESERVE IN/OUT) and SCSI-2
// RESERVE/RELEASE(6/10), served through the node's reservation manager exactly as
// engine/nvmf serves NVMe reservations: commands go on its control ring and come back
// decided on this reactor; every other command checks the volume's published View.
// Identity mapping: a nexus's reservation.Identity is reservation.SCSINexus(initiator
// name, ISID, relative target port), the same Identity the volume's NVMe export never
// matches (see engine/reservation's package doc).

// accessOf classifies an opcode for the conflict check (engine/reservation's Access
// doc, SPC-4 Table 65 and SPDK's scsi_pr.c table). decided marks the commands the
// manager decides itself (PERSISTENT RESERVE OUT, RESERVE, RELEASE): no View check.
func accessOf(c *scsi.CDB) (a reservation.Access, decided bool) {
	switch c.Opcode {
	case scsi.OpInquiry, scsi.OpReportLUNs, scsi.OpRequestSense:
		return reservation.AccessAlways, false
	case scsi.OpTestUnitReady, scsi.OpReadCapacity10, scsi.OpStartStopUnit,
		scsi.OpPreventAllowRemoval:
		return reservation.AccessControl, false
	case scsi.OpPersistentReserveIn:
		return reservation.AccessResvIn, false
	case scsi.OpPersistentReserveOut, scsi.OpReserve6, scsi.OpReserve10, scsi.OpRelease6,
		scsi.OpRelease10:
		return reservation.AccessInvalid, true
	case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16, scsi.OpVerify10,
		scsi.OpVerify12, scsi.OpVerify16, scsi.OpPreFetch10, scsi.OpPreFetch16,
		scsi.OpModeSense6, scsi.OpModeSense10, scsi.OpMaintenanceIn, scsi.OpReadDefectData10,
		scsi.OpReadDefectData12, scsi.OpReceiveCopyResults:
		if c.Opcode == scsi.OpMaintenanceIn && c.ServiceAction == scsi.SAReportTargetPortGroups {
			return reservation.AccessControl, false
		}
		return reservation.AccessRead, false
	case scsi.OpServiceActionIn16:
		if c.ServiceAction == scsi.SAReadCapacity16 {
			return reservation.AccessControl, false
		}
		return reservation.AccessRead, false // GET LBA STATUS reads metadata
	}
	// Every write, UNMAP, WRITE SAME, COMPARE AND WRITE, ORWRITE, WRITE ATOMIC,
	// SANITIZE, EXTENDED COPY, SYNCHRONIZE CACHE, MODE SELECT, and anything
	// unclassified (which then fails safe).
	return reservation.AccessWrite, false
}

// reservationApplies reports whether a reservation could refuse t now: the volume has
// one, and t is not a command the manager decides or one every reservation allows.
func (ch *Channel) reservationApplies(t *Task) bool {
	vol := ch.lu.vol
	if vol == nil || vol.View() == nil {
		return false
	}
	a, decided := accessOf(&t.x.cdb)
	return !decided && a != reservation.AccessAlways
}

// allowed is the conflict check: one nil test when the volume has no reservation, an
// allocation-free scan of the registrants otherwise.
func (ch *Channel) allowed(t *Task) bool {
	vol := ch.lu.vol
	if vol == nil {
		return true
	}
	v := vol.View()
	if v == nil {
		return true
	}
	a, decided := accessOf(&t.x.cdb)
	return decided || v.Allows(t.Nexus.id, a)
}

// persistentReserveIn is PERSISTENT RESERVE IN, answered from the volume's published
// state (the manager publishes before it answers a PERSISTENT RESERVE OUT, so a host
// reads back what it just did).
func (ch *Channel) persistentReserveIn(t *Task) {
	lu, c := ch.lu, &t.x.cdb
	if lu.vol == nil {
		ch.fail(t, scsi.ErrInvalidOpcode)
		return
	}
	st := lu.vol.State()
	b := ch.resp[:0]
	switch scsi.PRInAction(c.ServiceAction) {
	case scsi.PRInReadKeys:
		rk := st.ReadKeys()
		b = scsi.AppendPRInReadKeys(b, rk.Generation, rk.Keys)
	case scsi.PRInReadReservation:
		rr := st.ReadReservation()
		var r *scsi.PRReservation
		if rr.Reserved {
			r = &scsi.PRReservation{Key: rr.Key, Scope: rr.Scope, Type: scsi.PRType(rr.Type)}
		}
		b = scsi.AppendPRInReadReservation(b, rr.Generation, r)
	case scsi.PRInReportCapabilities:
		caps := scsi.PRCapabilities(st.ReportCapabilities())
		b = caps.Append(b)
	default:
		fs := st.ReadFullStatus()
		b = scsi.AppendPRInFullStatus(b, fs.Generation, fullStatus(fs.Entries))
	}
	ch.dataIn(t, b, c.AllocationLength)
}

// fullStatus converts READ FULL STATUS entries. An NVMe registrant of the same volume
// has no SCSI TransportID; it is shown as an iSCSI TransportID whose name carries its
// host identifier, "nvme.hostid.<32 hex digits>" (no ISID), so that a SCSI host sees
// every key that takes part in PREEMPT.
func fullStatus(es []reservation.FullStatusEntry) []scsi.PRFullStatus {
	out := make([]scsi.PRFullStatus, len(es))
	for i, e := range es {
		out[i] = scsi.PRFullStatus{Key: e.Key, AllTgPt: e.AllTargetPorts, Holder: e.Holder,
			Scope: e.Scope, Type: scsi.PRType(e.Type), RelativeTargetPort: e.RelativeTargetPort,
			TransportID: scsi.TransportID(e.TransportID)}
		if e.Protocol == reservation.ProtocolNVMe {
			name := "nvme.hostid." + hex.EncodeToString(e.HostID[:])
			out[i].TransportID = scsi.TransportID{Name: name}
		}
	}
	return out
}

// prOutActions maps PERSISTENT RESERVE OUT service actions 00h-07h to Actions.
var prOutActions = [...]reservation.Action{reservation.SCSIRegister, reservation.SCSIReserve,
	reservation.SCSIRelease, reservation.SCSIClear, reservation.SCSIPreempt,
	reservation.SCSIPreemptAbort, reservation.SCSIRegisterIgnore, reservation.SCSIRegisterMove}

// persistentReserveOut is PERSISTENT RESERVE OUT: decoded here, decided by the manager.
func (ch *Channel) persistentReserveOut(t *Task) {
	lu, c := ch.lu, &t.x.cdb
	if lu.vol == nil {
		ch.fail(t, scsi.ErrInvalidOpcode)
		return
	}
	pll := uint64(c.ParameterListLength)
	if uint64(len(t.Data)) < pll {
		ch.fail(t, errInvalidIU)
		return
	}
	sa := scsi.PROutAction(c.ServiceAction)
	p, err := scsi.DecodePROut(sa, t.Data[:pll])
	if err != nil {
		ch.fail(t, err)
		return
	}
	typ, _ := reservation.TypeFromSCSI(uint8(c.PRType))
	cmd := reservation.Command{Action: prOutActions[sa], From: t.Nexus.id,
		Key: p.ReservationKey, ServiceKey: p.ServiceActionKey, Type: typ, Scope: c.PRScope,
		APTPL: p.APTPL, AllTargetPorts: p.AllTgPt, SpecIPT: p.SpecIPT}
	if sa == scsi.PROutRegisterAndMove {
		if !lu.hasPort(p.RelativeTargetPort) {
			ch.fail(t, scsi.InvalidFieldInParameterList(18, -1))
			return
		}
		cmd.MoveTo = reservation.TransportID(p.TransportIDs[0])
		cmd.MoveTargetPort, cmd.Unreg = p.RelativeTargetPort, p.Unreg
	} else {
		for _, id := range p.TransportIDs {
			cmd.TransportIDs = append(cmd.TransportIDs, reservation.TransportID(id))
		}
	}
	ch.submitResv(t, cmd)
}

// scsi2Reservation is RESERVE(6/10) and RELEASE(6/10), for VMware's VMFS fallback and
// libiscsi Reserve6. Third-party reservations (SPC-2 3RDPTY) are not offered.
func (ch *Channel) scsi2Reservation(t *Task) {
	lu, c := ch.lu, &t.x.cdb
	if lu.vol == nil {
		ch.fail(t, scsi.ErrInvalidOpcode)
		return
	}
	if c.ThirdParty { // LONGID matters only with 3RDPTY (SPC-2 §7.21.2)
		ch.fail(t, scsi.InvalidFieldInCDB(1, 4))
		return
	}
	a := reservation.SCSI2Reserve
	if c.Opcode == scsi.OpRelease6 || c.Opcode == scsi.OpRelease10 {
		a = reservation.SCSI2Release
	}
	ch.submitResv(t, reservation.Command{Action: a, From: t.Nexus.id})
}

// submitResv hands a command to the manager; the task waits (taskStateManager) for the
// answer on this reactor. The answer is dropped if the task was aborted meanwhile.
func (ch *Channel) submitResv(t *Task, cmd reservation.Command) {
	t.x.state = taskStateManager
	gen := t.x.gen
	ch.lu.mgr.Submit(ch.r, ch.lu.vol, cmd, func(res reservation.Result, err error) {
		x := &t.x
		if x.ch != ch || x.gen != gen || !x.inflight || x.state != taskStateManager {
			return
		}
		ch.resvAnswered(t, res, err)
	})
}

// resvAnswered maps the manager's decision to SCSI. A refusal the host may retry (the
// backup group leader not synchronized, no leader, a full control ring) is BUSY: the
// initiator retries, and does not read it as fencing as it would RESERVATION CONFLICT.
func (ch *Channel) resvAnswered(t *Task, res reservation.Result, err error) {
	switch {
	case errors.Is(err, manager.ErrRetryable):
		ch.finishStatus(t, scsi.StatusBusy)
		return
	case err != nil:
		ch.fail(t, scsi.ErrInternalTargetFailure)
		return
	}
	s := res.Status.SCSI()
	if s.Status != reservation.SCSICheckCondition {
		ch.finishStatus(t, scsi.Status(s.Status))
		return
	}
	sense := scsi.Sense{Key: scsi.SenseKey(s.SenseKey),
		Code: scsi.SenseCode(s.ASC)<<8 | scsi.SenseCode(s.ASCQ)}
	ch.checkCondition(t, &sense)
}
