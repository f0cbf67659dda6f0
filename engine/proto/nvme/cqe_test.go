package nvme

import (
	"bytes"
	"testing"
)

func TestCQEOffsets(t *testing.T) {
	var c CQE
	c.Fill(0x0A0B, 0x0102, 0x0304, 0x11223344, 0x55667788, StatusInvalidField.WithDNR())
	want := []byte{0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55,
		0x04, 0x03, 0x02, 0x01, 0x0B, 0x0A, 0x04, 0x80}
	if !bytes.Equal(c[:], want) {
		t.Fatalf("CQE %x, want %x", c[:], want)
	}
	if c.DW0() != 0x11223344 || c.DW1() != 0x55667788 || c.SQHD() != 0x0304 ||
		c.SQID() != 0x0102 || c.CID() != 0x0A0B || c.Phase() ||
		c.Status() != StatusInvalidField.WithDNR() {
		t.Fatal("accessors")
	}
	c.SetPhase(true)
	c.SetStatus(StatusReservationConflict)
	if !c.Phase() || c.Status() != StatusReservationConflict || c[14] != 0x07 || c[15] != 0x01 {
		t.Fatalf("phase/status %x", c[14:])
	}
	c.SetDW0(1)
	c.SetDW1(2)
	c.SetSQHD(3)
	c.SetSQID(4)
	c.SetCID(5)
	c.SetPhase(false)
	if c.DW0() != 1 || c.DW1() != 2 || c.SQHD() != 3 || c.SQID() != 4 || c.CID() != 5 ||
		c.Phase() {
		t.Fatal("setters")
	}
	c.Reset()
	if c != (CQE{}) {
		t.Fatal("Reset")
	}
}

func TestConnectResponse(t *testing.T) {
	dw0 := ConnectSuccessDW0(0x0042, 1)
	if dw0 != 0x00010042 {
		t.Fatalf("%#x", dw0)
	}
	if id, ar := ConnectCNTLID(dw0); id != 0x42 || ar != 1 {
		t.Fatal(id, ar)
	}
	dw0 = ConnectInvalidParamDW0(ConnectDataHostNQNOffset, IATTRData)
	if dw0 != 0x00010200 {
		t.Fatalf("%#x", dw0)
	}
	if ipo, ia := ConnectInvalidParam(dw0); ipo != 512 || ia != IATTRData {
		t.Fatal(ipo, ia)
	}
}

// statusCases pins SCT, SC and String() for the statuses the target returns.
var statusCases = []struct {
	s    Status
	sct  SCT
	sc   uint8
	name string
}{
	{StatusInvalidOpcode, 0, 0x01, "invalid command opcode (sct 0h sc 01h)"},
	{StatusInvalidField.WithDNR(), 0, 0x02, "invalid field in command (sct 0h sc 02h) dnr"},
	{StatusCIDConflict, 0, 0x03, "command id conflict (sct 0h sc 03h)"},
	{StatusDataTransferError, 0, 0x04, "data transfer error (sct 0h sc 04h)"},
	{StatusInternalError, 0, 0x06, "internal error (sct 0h sc 06h)"},
	{StatusAbortRequested, 0, 0x07, "command abort requested (sct 0h sc 07h)"},
	{StatusInvalidNamespaceOrFormat, 0, 0x0B, "invalid namespace or format (sct 0h sc 0bh)"},
	{StatusCommandSequenceError, 0, 0x0C, "command sequence error (sct 0h sc 0ch)"},
	{StatusSGLDescriptorTypeInvalid, 0, 0x11, "sgl descriptor type invalid (sct 0h sc 11h)"},
	{StatusHostIdentifierInconsistentFormat, 0, 0x18,
		"host identifier inconsistent format (sct 0h sc 18h)"},
	{StatusCommandInterrupted, 0, 0x21, "command interrupted (sct 0h sc 21h)"},
	{StatusTransientTransportError.WithCRD(1), 0, 0x22,
		"transient transport error (sct 0h sc 22h) crd1"},
	{StatusLBAOutOfRange, 0, 0x80, "lba out of range (sct 0h sc 80h)"},
	{StatusCapacityExceeded, 0, 0x81, "capacity exceeded (sct 0h sc 81h)"},
	{StatusNamespaceNotReady, 0, 0x82, "namespace not ready (sct 0h sc 82h)"},
	{StatusReservationConflict, 0, 0x83, "reservation conflict (sct 0h sc 83h)"},
	{StatusInvalidQueueIdentifier, 1, 0x01, "invalid queue identifier (sct 1h sc 01h)"},
	{StatusInvalidLogPage, 1, 0x09, "invalid log page (sct 1h sc 09h)"},
	{StatusInvalidFormat, 1, 0x0A, "invalid format (sct 1h sc 0ah)"},
	{StatusFeatureIdentifierNotSaveable, 1, 0x0D,
		"feature identifier not saveable (sct 1h sc 0dh)"},
	{StatusFeatureNotChangeable, 1, 0x0E, "feature not changeable (sct 1h sc 0eh)"},
	{StatusConflictingAttributes, 1, 0x80,
		"conflicting attributes / connect incompatible format (sct 1h sc 80h)"},
	{StatusConnectIncompatibleFormat, 1, 0x80,
		"conflicting attributes / connect incompatible format (sct 1h sc 80h)"},
	{StatusConnectControllerBusy, 1, 0x81,
		"invalid protection information / connect controller busy (sct 1h sc 81h)"},
	{StatusConnectInvalidParameters.WithDNR(), 1, 0x82,
		"attempted write to read only range / connect invalid parameters (sct 1h sc 82h) dnr"},
	{StatusConnectRestartDiscovery, 1, 0x83,
		"command size limit exceeded / connect restart discovery (sct 1h sc 83h)"},
	{StatusConnectInvalidHost, 1, 0x84, "connect invalid host (sct 1h sc 84h)"},
	{StatusInvalidQueueType, 1, 0x85, "invalid queue type (sct 1h sc 85h)"},
	{StatusWriteFault, 2, 0x80, "write fault (sct 2h sc 80h)"},
	{StatusUnrecoveredReadError, 2, 0x81, "unrecovered read error (sct 2h sc 81h)"},
	{StatusCompareFailure, 2, 0x85, "compare failure (sct 2h sc 85h)"},
	{StatusAccessDenied, 2, 0x86, "access denied (sct 2h sc 86h)"},
	{StatusDeallocatedOrUnwrittenBlock, 2, 0x87,
		"deallocated or unwritten logical block (sct 2h sc 87h)"},
	{StatusAsymmetricAccessInaccessible, 3, 0x02,
		"asymmetric access inaccessible (sct 3h sc 02h)"},
	{NewStatus(SCTVendor, 0xC0).WithMore(), 7, 0xC0, "unknown status (sct 7h sc c0h) more"},
}

func TestStatusFields(t *testing.T) {
	s := NewStatus(SCTCommandSpecific, 0x82).WithDNR().WithMore().WithCRD(2)
	if s.SCT() != SCTCommandSpecific || s.SC() != 0x82 || !s.DNR() || !s.More() ||
		s.CRD() != 2 || s.Code() != StatusConnectInvalidParameters || s.Success() {
		t.Fatalf("%#x", uint16(s))
	}
	if uint16(s) != 0x1000|0x2000|0x4000|0x182 {
		t.Fatalf("%#x", uint16(s))
	}
	if !StatusSuccess.Success() || !StatusSuccess.WithDNR().Success() {
		t.Fatal("success")
	}
	for _, tc := range statusCases {
		if tc.s.SCT() != tc.sct || tc.s.SC() != tc.sc {
			t.Errorf("%s: sct %d sc %#x", tc.name, tc.s.SCT(), tc.s.SC())
		}
		if got := tc.s.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
	}
}
