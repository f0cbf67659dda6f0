package scsi

import (
	"bytes"
	"reflect"
	"testing"
)

var testCopyLimits = CopyLimits{MaxTargetDescriptors: 2, MaxSegmentDescriptors: 4,
	MaxDescriptorListLength: 1024, MaxSegmentLength: 32 << 20, TotalConcurrentCopies: 16}

// xcopyList is the list libiscsi ExtendedCopy.Simple sends: one E4h descriptor naming
// the LU by its NAA, one 02h segment.
func xcopyList(blocks uint16, dst uint64) XCopyList {
	naa := bytes.Repeat([]byte{0x6A}, 16)
	return XCopyList{ListID: 1, ListIDUsage: XCopyListIDNoHold,
		Targets: []XCopyTarget{{Type: XCopyTgtIdentification, CodeSet: 1, DesignatorType: 3,
			Designator: naa, BlockLength: 512}},
		Segments: []XCopySegment{{Type: XCopySegBlockToBlock, Blocks: blocks, DstLBA: dst}}}
}

func TestDecodeExtendedCopy(t *testing.T) {
	l := xcopyList(2048, 1000)
	b := l.Append(nil)
	if len(b) != 16+32+28 {
		t.Fatalf("%d bytes", len(b))
	}
	// The bytes libiscsi's populate_tgt_desc and populate_seg_desc_b2b write.
	if b[16] != 0xE4 || b[16+4] != 1 || b[16+5] != 3 || b[16+7] != 16 || b[16+31] != 0 ||
		b[16+30] != 2 || b[48] != 0x02 || b[48+3] != 0x18 || be.Uint16(b[48+10:]) != 2048 {
		t.Fatalf("% x", b)
	}
	got, err := DecodeExtendedCopy(b, &testCopyLimits)
	if err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("%+v %v", got, err)
	}
	code := func(err error) SenseCode {
		s, _ := AsSense(err)
		return s.Code
	}
	cut := func(n int) []byte { return b[:n] }
	many := func(tgt, seg int) []byte {
		l := xcopyList(8, 0)
		for len(l.Targets) < tgt {
			l.Targets = append(l.Targets, l.Targets[0])
		}
		for len(l.Segments) < seg {
			l.Segments = append(l.Segments, l.Segments[0])
		}
		return l.Append(nil)
	}
	withType := func(at int, v byte) []byte {
		c := bytes.Clone(b)
		c[at] = v
		return c
	}
	for _, c := range []struct {
		name string
		b    []byte
		want SenseCode
	}{
		// libiscsi ExtendedCopy.ParamHdr: lengths cutting a descriptor.
		{"header only", cut(15), ASCParameterListLengthError},
		{"target cut", cut(16 + 32 - 1), ASCParameterListLengthError},
		{"segment cut", cut(16 + 32 + 28 - 1), ASCParameterListLengthError},
		// libiscsi ExtendedCopy.DescrLimits.
		{"too many targets", many(3, 1), ASCTooManyTargetDescriptors},
		{"too many segments", many(1, 5), ASCTooManySegmentDescriptors},
		{"list too long", many(3, 40), ASCParameterListLengthError},
		// libiscsi ExtendedCopy.DescrType: FC N_Port_Name target, stream segment.
		{"fc target", withType(16, 0xE0), ASCUnsupportedTargetDescriptorType},
		{"stream segment", withType(48, 0x03), ASCUnsupportedSegmentDescriptorType},
		{"inline data", append(withType(15, 4), 0, 0, 0, 0), ASCInvalidFieldInParameterList},
		{"segment length", withType(48+3, 0x14), ASCInvalidFieldInParameterList},
	} {
		l, err := DecodeExtendedCopy(c.b, &testCopyLimits)
		if code(err) != c.want || l.Targets != nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCopyResults(t *testing.T) {
	b := AppendCopyOperatingParameters(nil, &testCopyLimits)
	// libiscsi reads at least 40 bytes and the implemented descriptor list @43.
	if len(b) != 46 || be.Uint32(b) != 42 || be.Uint16(b[8:]) != 2 || be.Uint16(b[10:]) != 4 ||
		be.Uint32(b[12:]) != 1024 || be.Uint32(b[16:]) != 32<<20 || b[43] != 2 ||
		!bytes.Equal(b[44:], []byte{0x02, 0xE4}) {
		t.Fatalf("operating parameters % x", b)
	}
	s := AppendCopyStatus(nil, &CopyStatus{Status: CopyCompleted, SegmentsProcessed: 1, Bytes: 1 << 20})
	if !bytes.Equal(s, []byte{0, 0, 0, 8, 1, 0, 1, 0, 0, 0x10, 0, 0}) {
		t.Fatalf("copy status % x", s)
	}
	s = AppendCopyStatus(nil, &CopyStatus{Status: CopyCompleted, Bytes: 1 << 40})
	if s[7] != 1 || be.Uint32(s[8:]) != 1<<30 {
		t.Fatalf("copy status in KiB % x", s)
	}
}
