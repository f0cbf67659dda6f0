package host

import (
	"context"
	"fmt"

	"sluice/engine/proto/nvme"
)

// Reservation commands (NVM §3.2.4..3.2.7) on an I/O queue. They return the
// completion's status as the controller sent it, DNR, More and CRD included, and an
// error only when no completion came back (a transport failure, a timeout): a test of
// the admission rule must tell Command Interrupted with DNR clear from Reservation
// Conflict, and a retry loop must see the status without unwrapping a *StatusError.
// Like the other synchronous helpers, they serialise on the queue and must not be mixed
// with the asynchronous API while commands are in flight.

// ResvRegister sends Reservation Register (opcode 0Dh) for namespace nsid: f goes in
// CDW10 (RREGA, IEKEY, CPTPL), d is the 16-byte data (CRKEY, NRKEY).
func (q *IOQueue) ResvRegister(ctx context.Context, nsid uint32, f nvme.ResvRegister,
	d nvme.ResvRegisterData) (nvme.Status, error) {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, nvme.ResvRegisterDataLen)
	d.Put(b)
	return q.resvExec(ctx, "reservation register", nvme.NVMReservationRegister, nsid, &s, b)
}

// ResvAcquire sends Reservation Acquire (opcode 11h): f is RACQA, IEKEY and RTYPE, d
// the 16-byte data (CRKEY, PRKEY).
func (q *IOQueue) ResvAcquire(ctx context.Context, nsid uint32, f nvme.ResvAcquire,
	d nvme.ResvAcquireData) (nvme.Status, error) {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, nvme.ResvAcquireDataLen)
	d.Put(b)
	return q.resvExec(ctx, "reservation acquire", nvme.NVMReservationAcquire, nsid, &s, b)
}

// ResvRelease sends Reservation Release (opcode 15h): f is RRELA, IEKEY and RTYPE, d
// the 8-byte data (CRKEY).
func (q *IOQueue) ResvRelease(ctx context.Context, nsid uint32, f nvme.ResvRelease,
	d nvme.ResvReleaseData) (nvme.Status, error) {
	var s nvme.SQE
	f.Put(&s)
	b := make([]byte, nvme.ResvReleaseDataLen)
	d.Put(b)
	return q.resvExec(ctx, "reservation release", nvme.NVMReservationRelease, nsid, &s, b)
}

// resvReportLen is the Reservation Report buffer: the extended header and 63
// registrants, more than any test registers.
const resvReportLen = 4096

// ResvReport sends Reservation Report (opcode 0Eh) with EDS=1, the only form a fabrics
// controller answers (128-bit host identifiers), and decodes the extended data. The
// header and registrants are valid only when the status is a success.
func (q *IOQueue) ResvReport(ctx context.Context, nsid uint32) (nvme.ResvStatus,
	[]nvme.ResvRegistrantExt, nvme.Status, error) {
	var s nvme.SQE
	nvme.ResvReport{NUMD: resvReportLen/4 - 1, EDS: true}.Put(&s)
	buf := make([]byte, resvReportLen)
	st, err := q.resvExec(ctx, "reservation report", nvme.NVMReservationReport, nsid, &s, buf)
	if err != nil || !st.Success() {
		return nvme.ResvStatus{}, nil, st, err
	}
	h, regs, err := nvme.DecodeResvStatusExt(buf)
	if err != nil {
		return nvme.ResvStatus{}, nil, st, fmt.Errorf("reservation report: %w", err)
	}
	return h, regs, st, nil
}

// resvExec sends a reservation command whose CDW10/CDW11 are already in s.
func (q *IOQueue) resvExec(ctx context.Context, op string, opcode nvme.NVMOpcode, nsid uint32,
	s *nvme.SQE, data []byte) (nvme.Status, error) {
	s.SetOpcode(uint8(opcode))
	s.SetNSID(nsid)
	cqe, err := q.exec(ctx, q.timeout, func(dst *nvme.SQE) { *dst = *s }, data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return cqe.Status(), nil
}
