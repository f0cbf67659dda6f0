package scsi

import "bytes"

// ModeSelectPage is one page of a MODE SELECT parameter list.
type ModeSelectPage struct {
	Code    uint8 // @0 bits 5:0
	SPF     bool  // @0 bit 6: sub_page format
	PS      bool  // @0 bit 7: reserved in MODE SELECT, kept for round trips
	Subpage uint8 // @1 when SPF
	// Params are the page parameters after the header; they alias the decoded buffer.
	Params []byte
	// Offset is the page's byte offset in the parameter list, for field pointers.
	Offset int
}

// ModeSelectList is a decoded MODE SELECT(6)/(10) parameter list (SPC-4 §7.5.4): the
// mode parameter header, at most one block descriptor (SBC-3 §6.4.2) and the pages.
type ModeSelectList struct {
	Ten            bool  // MODE SELECT(10): 8-byte header
	MediumType     uint8 // @1 (6) / @2 (10)
	DeviceSpecific uint8 // @2 (6) / @3 (10); WP and DPOFUA are ignored by SBC devices
	LongLBA        bool  // @4 bit 0 (10 only): 16-byte block descriptor
	// HasBlockDescriptor, Blocks and BlockLength are the block descriptor.
	HasBlockDescriptor bool
	Blocks             uint64
	BlockLength        uint32
	Pages              []ModeSelectPage
}

func (l *ModeSelectList) headerLen() int {
	if l.Ten {
		return 8
	}
	return 4
}

func (l *ModeSelectList) descriptorLen() int {
	if !l.HasBlockDescriptor {
		return 0
	}
	if l.LongLBA {
		return 16
	}
	return 8
}

// DecodeModeSelect parses a MODE SELECT parameter list; ten selects the (10) header. An
// empty list is valid (PARAMETER LIST LENGTH 0 is not an error, SPC-4 §6.11). Errors:
// PARAMETER LIST LENGTH ERROR for a header, descriptor or page cut short, INVALID FIELD
// IN PARAMETER LIST for a BLOCK DESCRIPTOR LENGTH other than 0 or one descriptor. On
// error the list is the zero value.
func DecodeModeSelect(b []byte, ten bool) (ModeSelectList, error) {
	l := ModeSelectList{Ten: ten}
	if len(b) == 0 {
		return l, nil
	}
	if len(b) < l.headerLen() {
		return ModeSelectList{}, ErrParameterListLength
	}
	var bdLen, bdAt int
	if ten {
		l.MediumType, l.DeviceSpecific, l.LongLBA = b[2], b[3], b[4]&0x01 != 0
		bdLen, bdAt = int(be.Uint16(b[6:8])), 6
	} else {
		l.MediumType, l.DeviceSpecific = b[1], b[2]
		bdLen, bdAt = int(b[3]), 3
	}
	off := l.headerLen()
	if bdLen != 0 {
		l.HasBlockDescriptor = true
		if bdLen != l.descriptorLen() {
			return ModeSelectList{}, InvalidFieldInParameterList(bdAt, -1)
		}
		if len(b) < off+bdLen {
			return ModeSelectList{}, ErrParameterListLength
		}
		l.Blocks, l.BlockLength = decodeBlockDescriptor(b[off:off+bdLen], l.LongLBA)
		off += bdLen
	}
	pages, err := decodeModePages(b, off)
	if err != nil {
		return ModeSelectList{}, err
	}
	l.Pages = pages
	return l, nil
}

func decodeBlockDescriptor(d []byte, long bool) (uint64, uint32) {
	if long {
		return be.Uint64(d[0:8]), be.Uint32(d[12:16])
	}
	return uint64(be.Uint32(d[0:4])), uint32(d[5])<<16 | uint32(d[6])<<8 | uint32(d[7])
}

func decodeModePages(b []byte, off int) ([]ModeSelectPage, error) {
	var pages []ModeSelectPage
	for off < len(b) {
		p := ModeSelectPage{Code: b[off] & 0x3F, SPF: b[off]&0x40 != 0, PS: b[off]&0x80 != 0,
			Offset: off}
		hdr, n := 2, 0
		if p.SPF {
			hdr = 4
		}
		if off+hdr > len(b) {
			return nil, ErrParameterListLength
		}
		if p.SPF {
			p.Subpage, n = b[off+1], int(be.Uint16(b[off+2:off+4]))
		} else {
			n = int(b[off+1])
		}
		if off+hdr+n > len(b) {
			return nil, ErrParameterListLength
		}
		p.Params = b[off+hdr : off+hdr+n]
		pages = append(pages, p)
		off += hdr + n
	}
	return pages, nil
}

// Append encodes l as a MODE SELECT parameter list (MODE DATA LENGTH, reserved for MODE
// SELECT, is written as 0), for tests and initiators.
func (l *ModeSelectList) Append(b []byte) []byte {
	bd := l.descriptorLen()
	if l.Ten {
		b = append(b, 0, 0, l.MediumType, l.DeviceSpecific, bit(l.LongLBA, 0), 0)
		b = be.AppendUint16(b, uint16(bd))
	} else {
		b = append(b, 0, l.MediumType, l.DeviceSpecific, byte(bd))
	}
	if bd == 16 {
		b = be.AppendUint64(b, l.Blocks)
		b = append(b, 0, 0, 0, 0)
		b = be.AppendUint32(b, l.BlockLength)
	} else if bd == 8 {
		b = be.AppendUint32(b, uint32(l.Blocks))
		b = append(b, 0, byte(l.BlockLength>>16), byte(l.BlockLength>>8), byte(l.BlockLength))
	}
	for _, p := range l.Pages {
		b = append(b, bit(p.PS, 7)|bit(p.SPF, 6)|p.Code&0x3F)
		if p.SPF {
			b = append(b, p.Subpage)
			b = be.AppendUint16(b, uint16(len(p.Params)))
		} else {
			b = append(b, byte(len(p.Params)))
		}
		b = append(b, p.Params...)
	}
	return b
}

// Select applies a decoded MODE SELECT list to the pages, all or nothing: every page is
// checked first, then the changeable bits are copied into Current. c is the MODE SELECT
// CDB; h gives the capacity and block length the block descriptor may only restate
// (NUMBER OF LOGICAL BLOCKS 0 means "unchanged", SBC-3 §6.4.2.2). changed reports whether
// any current value changed, so the command layer can raise MODE PARAMETERS CHANGED
// (2Ah/01h) on the other I_T nexuses (SPC-4 §7.5.1). Errors (SPC-4 §6.11):
//   - SP=1: INVALID FIELD IN CDB @1 bit 0 (no page is savable);
//   - pages with PF=0: INVALID FIELD IN CDB @1 bit 4;
//   - an unknown page: INVALID FIELD IN PARAMETER LIST at its PAGE CODE;
//   - a PAGE LENGTH other than the page's: INVALID FIELD IN PARAMETER LIST at it;
//   - a bit outside the changeable mask that differs from its current value: INVALID
//     FIELD IN PARAMETER LIST at that byte and bit.
func (m ModePages) Select(l *ModeSelectList, c *CDB, h *ModeHeader) (changed bool, err error) {
	if c.SP {
		return false, InvalidFieldInCDB(1, 0)
	}
	if !c.PF && len(l.Pages) > 0 {
		return false, InvalidFieldInCDB(1, 4)
	}
	if err := checkBlockDescriptor(l, h); err != nil {
		return false, err
	}
	targets := make([]*ModePage, len(l.Pages))
	for i := range l.Pages {
		if targets[i], err = m.checkPage(&l.Pages[i]); err != nil {
			return false, err
		}
	}
	for i, t := range targets {
		v := l.Pages[i].Params
		for j := range t.Current {
			next := t.Current[j]&^t.Changeable[j] | v[j]&t.Changeable[j]
			changed = changed || next != t.Current[j]
			t.Current[j] = next
		}
	}
	return changed, nil
}

func checkBlockDescriptor(l *ModeSelectList, h *ModeHeader) error {
	if !l.HasBlockDescriptor {
		return nil
	}
	base := l.headerLen()
	if l.BlockLength != h.BlockSize {
		at := base + 5
		if l.LongLBA {
			at = base + 12
		}
		return InvalidFieldInParameterList(at, -1)
	}
	same := l.Blocks == 0 || l.Blocks == h.Blocks ||
		!l.LongLBA && h.Blocks > 0xFFFFFFFF && l.Blocks == 0xFFFFFFFF
	if !same {
		return InvalidFieldInParameterList(base, 7)
	}
	return nil
}

// checkPage finds the page p names and checks p against its length and mask.
func (m ModePages) checkPage(p *ModeSelectPage) (*ModePage, error) {
	sub := uint8(0)
	if p.SPF {
		sub = p.Subpage
	}
	t := m.Find(p.Code, sub)
	if t == nil || p.SPF != (t.Subpage != 0) {
		return nil, InvalidFieldInParameterList(p.Offset, 5)
	}
	hdr := t.headerLen()
	if len(p.Params) != len(t.Current) {
		return nil, InvalidFieldInParameterList(p.Offset+hdr-1, -1)
	}
	if bytes.Equal(p.Params, t.Current) {
		return t, nil
	}
	for j, v := range p.Params {
		if diff := (v ^ t.Current[j]) &^ t.Changeable[j]; diff != 0 {
			return nil, InvalidFieldInParameterList(p.Offset+hdr+j, msb(diff))
		}
	}
	return t, nil
}

// msb returns the index of the highest set bit of a non-zero byte.
func msb(x byte) int {
	n := 7
	for x&0x80 == 0 {
		x <<= 1
		n--
	}
	return n
}
