package scsi

import (
	"bytes"
	"testing"
)

func sluiceInquiry() StandardInquiry {
	return StandardInquiry{
		Peripheral: PeripheralDisk, Version: VersionSPC4, HiSup: true, TPGS: TPGSImplicit,
		ThirdPartyCopy: false, CmdQue: true, Vendor: "SLUICE", Product: "volume",
		Revision: "0.1",
		VersionDescriptors: [8]uint16{VersionDescriptorSAM5, VersionDescriptorISCSI,
			VersionDescriptorSPC4, VersionDescriptorSBC3},
	}
}

func TestStandardInquiryOffsets(t *testing.T) {
	s := sluiceInquiry()
	b := s.Append([]byte{0xEE})[1:]
	if len(b) != StandardInquiryLen {
		t.Fatalf("length %d", len(b))
	}
	// SPC-4 table "Standard INQUIRY data format".
	checkFields(t, "standard", b, []field{
		{0, []byte{0x00, 0x00, 0x06}}, // PQ/PDT, RMB, VERSION SPC-4
		{3, []byte{0x12, 91}},         // HISUP | RESPONSE DATA FORMAT 2, ADDITIONAL LENGTH
		{5, []byte{0x10, 0x00, 0x02}}, // TPGS 01b; CMDQUE
		{8, []byte("SLUICE  volume          0.1 ")},
		{56, []byte{0, 0, 0x00, 0xA0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xC0, 0, 0}},
		{74, make([]byte, 22)},
	})
	// libiscsi Inquiry.Standard: ADDITIONAL LENGTH is what follows byte 4, and AERC
	// (@3 bit 7) and TRMTSK (@3 bit 6) stay clear for SPC-3 and later.
	if int(b[4]) != len(b)-5 || b[3]&0xC0 != 0 {
		t.Fatal("additional length / obsolete bits")
	}
	s.RMB, s.NormACA, s.SCCS, s.ACC, s.Protect, s.EncServ, s.MultiP = true, true, true,
		true, true, true, true
	s.ThirdPartyCopy = true
	b = s.Append(nil)
	checkFields(t, "flags", b, []field{{1, []byte{0x80, 0x06, 0x32, 91, 0xD9, 0x50, 0x02}}})

	missing := sluiceInquiry().NoLUN()
	n := missing.Append(nil)
	if n[0] != 0x7F || n[5] != 0x00 || !bytes.Equal(n[8:16], b[8:16]) {
		t.Fatalf("no-LUN data % x", n[:16])
	}
}

func TestPutASCIIAndTruncate(t *testing.T) {
	b := make([]byte, 8)
	PutASCII(b, "ab\x00\x7fcdefghij")
	if string(b) != "ab__cdef" {
		t.Fatalf("%q", b)
	}
	PutASCII(b, "")
	if string(b) != "        " {
		t.Fatalf("%q", b)
	}
	d := []byte{1, 2, 3, 4}
	if len(Truncate(d, 2)) != 2 || len(Truncate(d, 4)) != 4 || len(Truncate(d, 1<<31)) != 4 ||
		len(Truncate(d, 0)) != 0 {
		t.Fatal("Truncate")
	}
	if PeripheralNoLUN.Qualifier() != 3 || PeripheralNoLUN.DeviceType() != 0x1F {
		t.Fatal("Peripheral")
	}
}
