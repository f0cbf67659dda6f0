package reservation

import (
	"slices"
	"testing"
)

// The libiscsi iscsi-test-cu PR tests (sahlberg/libiscsi test-tool/test_prout_*.c,
// test_prin_*.c, test_reserve6_*.c) replayed against the state machine, step by step, with
// their expectations. sd1 and sd2 are two initiators (mpath_sd2_get_or_clone logs in with
// a second initiator name). When the SCSI target maps onto this package, these are the
// answers the conformance run will see.

var (
	sd1 = SCSINexus("iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test", 0x23D000000000, 1)
	sd2 = SCSINexus("iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2", 0x23D000000001, 1)
)

// canRead and canWrite are verify_read_works/verify_write_works through the View.
func canRead(s *State, id Identity) bool  { return s.View().Allows(id, AccessRead) }
func canWrite(s *State, id Identity) bool { return s.View().Allows(id, AccessWrite) }

// TestLibiscsiProutReserveAccess: SCSI.ProutReserve.Access{EA,WE,EARO,WERO,EAAR,WEAR}.
func TestLibiscsiProutReserveAccess(t *testing.T) {
	for _, c := range []struct {
		typ                           Type
		regRead, regWrite, unRd, unWr bool
	}{
		{ExclusiveAccess, false, false, false, false},
		{WriteExclusive, true, false, true, false},
		{ExclusiveAccessRegistrantsOnly, true, true, false, false},
		{WriteExclusiveRegistrantsOnly, true, true, true, false},
		{ExclusiveAccessAllRegistrants, true, true, false, false},
		{WriteExclusiveAllRegistrants, true, true, true, false},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			const key, key2 = 0x1111, 0x2222
			var s State
			mustApply(t, &s, scRegIgnore(sd1, key), StatusOK)
			mustApply(t, &s, scRegIgnore(sd2, key2), StatusOK)
			mustApply(t, &s, scReserve(sd1, key, c.typ), StatusOK)
			wantKey := uint64(key)
			if c.typ.AllRegistrants() {
				wantKey = 0
			}
			if rr := s.ReadReservation(); !rr.Reserved || rr.Key != wantKey || rr.Type != c.typ.SCSI() {
				t.Fatalf("prin_verify_reserved_as: %+v", rr)
			}
			if !canRead(&s, sd1) || !canWrite(&s, sd1) {
				t.Fatal("init1 access")
			}
			if canRead(&s, sd2) != c.regRead || canWrite(&s, sd2) != c.regWrite {
				t.Fatal("registered init2 access")
			}
			mustApply(t, &s, scReg(sd2, key2, 0), StatusOK)
			if canRead(&s, sd2) != c.unRd || canWrite(&s, sd2) != c.unWr {
				t.Fatal("unregistered init2 access")
			}
			mustApply(t, &s, scRelease(sd1, key, c.typ), StatusOK)
			mustApply(t, &s, scReg(sd1, key, 0), StatusOK)
			if len(s.Registrants) != 0 || s.Type != TypeNone {
				t.Fatalf("left behind %+v", s)
			}
		})
	}
}

// TestLibiscsiProutReserveOwnership: SCSI.ProutReserve.Ownership*: when the holder
// unregisters, a one-holder reservation goes; an all-registrants one stays and the other
// registrant may release it.
func TestLibiscsiProutReserveOwnership(t *testing.T) {
	for typ := WriteExclusive; typ <= ExclusiveAccessAllRegistrants; typ++ {
		t.Run(typ.String(), func(t *testing.T) {
			const key1, key2 = 0xA, 0xB
			var s State
			mustApply(t, &s, scRegIgnore(sd1, key1), StatusOK)
			mustApply(t, &s, scRegIgnore(sd2, key2), StatusOK)
			mustApply(t, &s, scReserve(sd1, key1, typ), StatusOK)
			r := mustApply(t, &s, scReg(sd1, key1, 0), StatusOK)
			if typ.AllRegistrants() {
				if rr := s.ReadReservation(); !rr.Reserved || rr.Key != 0 || rr.Type != typ.SCSI() {
					t.Fatalf("shared reservation lost: %+v", rr)
				}
				mustApply(t, &s, scRelease(sd2, key2, typ), StatusOK)
			} else if s.ReadReservation().Reserved {
				t.Fatal("prin_verify_not_reserved")
			}
			// The unit attention the test clears with TEST UNIT READY, for RO types.
			if got := noticesTo(r, sd2); typ.RegistrantsOnly() != (len(got) == 1) {
				t.Fatalf("unit attentions to sd2: %v", got)
			}
			mustApply(t, &s, scReg(sd2, key2, 0), StatusOK)
		})
	}
}

// TestLibiscsiProutPreemptRemoveRegistration: SCSI.ProutPreempt.RemoveRegistration.
func TestLibiscsiProutPreemptRemoveRegistration(t *testing.T) {
	const k1, k2 = 0x1234, 0x5678
	var s State
	mustApply(t, &s, scRegIgnore(sd1, k1), StatusOK)
	mustApply(t, &s, scClear(sd1, k1), StatusOK)
	mustApply(t, &s, scRegIgnore(sd1, k1), StatusOK)
	mustApply(t, &s, scRegIgnore(sd2, k2), StatusOK)
	rk := s.ReadKeys()
	if len(rk.Keys) != 2 {
		t.Fatalf("%+v", rk)
	}
	r := mustApply(t, &s, scPreempt(sd2, k2, k1, ExclusiveAccess), StatusOK)
	after := s.ReadKeys()
	if after.Generation != rk.Generation+1 || !slices.Equal(after.Keys, []uint64{k2}) {
		t.Fatalf("%+v after %+v", after, rk)
	}
	if got := noticesTo(r, sd1); len(got) != 1 || got[0] != RegistrationPreempted {
		t.Fatalf("UA to sd1: %v", got)
	}
	mustApply(t, &s, scReg(sd2, k2, 0), StatusOK)
}

// TestLibiscsiProutClearSimple: SCSI.ProutClear.Simple: CLEAR bumps the generation once,
// RESERVE not at all.
func TestLibiscsiProutClearSimple(t *testing.T) {
	const key = 0x77
	var s State
	mustApply(t, &s, scRegIgnore(sd1, key), StatusOK)
	old := s.ReadKeys().Generation
	mustApply(t, &s, scReserve(sd1, key, ExclusiveAccess), StatusOK)
	if rr := s.ReadReservation(); rr.Key != key || rr.Type != 3 {
		t.Fatalf("%+v", rr)
	}
	mustApply(t, &s, scClear(sd1, key), StatusOK)
	rk := s.ReadKeys()
	if s.ReadReservation().Reserved || len(rk.Keys) != 0 || rk.Generation != old+1 {
		t.Fatalf("%+v", rk)
	}
}

// TestLibiscsiProutRegisterSimple: SCSI.ProutRegister.Simple.
func TestLibiscsiProutRegisterSimple(t *testing.T) {
	const key = 0x99
	var s State
	mustApply(t, &s, scRegIgnore(sd1, key), StatusOK)
	if !slices.Contains(s.ReadKeys().Keys, key) {
		t.Fatal("prin_verify_key_presence")
	}
	mustApply(t, &s, scReg(sd1, 0, key+1), StatusConflict) // prout_reregister_key_fails
	mustApply(t, &s, scReg(sd1, key, 0), StatusOK)
	if slices.Contains(s.ReadKeys().Keys, key) {
		t.Fatal("key still present")
	}
}

// TestLibiscsiReserve6: SCSI.Reserve6.{Simple, 2Initiators, Logout, ITNexusLoss,
// LUNReset}; MODE SENSE is a read-class command.
func TestLibiscsiReserve6(t *testing.T) {
	var s State
	mustApply(t, &s, scsi2Reserve(sd1), StatusOK) // Simple
	mustApply(t, &s, scsi2Release(sd1), StatusOK)

	mustApply(t, &s, scsi2Reserve(sd1), StatusOK) // 2Initiators
	mustApply(t, &s, scsi2Reserve(sd1), StatusOK)
	mustApply(t, &s, scsi2Reserve(sd2), StatusConflict)
	mustApply(t, &s, scsi2Release(sd2), StatusOK)
	if !s.View().Allows(sd1, AccessRead) || s.View().Allows(sd2, AccessRead) {
		t.Fatal("MODE SENSE")
	}
	mustApply(t, &s, scsi2Reserve(sd2), StatusConflict)
	mustApply(t, &s, scsi2Release(sd1), StatusOK)
	mustApply(t, &s, scsi2Reserve(sd2), StatusOK)
	mustApply(t, &s, scsi2Release(sd2), StatusOK)

	for _, end := range []Command{{Action: NexusLost, From: sd1}, {Action: ClearSCSI2}} {
		mustApply(t, &s, scsi2Reserve(sd1), StatusOK) // Logout / ITNexusLoss / LUNReset
		mustApply(t, &s, scsi2Reserve(sd2), StatusConflict)
		mustApply(t, &s, end, StatusOK)
		mustApply(t, &s, scsi2Reserve(sd2), StatusOK)
		mustApply(t, &s, scsi2Release(sd2), StatusOK)
	}
}
