package iscsi

import (
	"errors"
	"testing"
)

func TestLayout(t *testing.T) {
	build := func(op Opcode, ahsWords uint8, dsl uint32) *BHS {
		var b BHS
		b[0] = byte(op)
		b.SetLengths(ahsWords, dsl)
		return &b
	}
	both := LayoutParams{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 65536}
	for _, c := range []struct {
		name string
		b    *BHS
		p    LayoutParams
		want Layout
		// offsets: header end, data end, total
		hdrEnd, dataEnd, total uint32
	}{
		{"nop no data", build(OpNOPOut, 0, 0), LayoutParams{}, Layout{}, 48, 48, 48},
		{"cmd immediate data digests", build(OpSCSICommand, 0, 4096), both,
			Layout{HeaderDigest: true, DataLen: 4096, DataDigest: true}, 52, 4148, 4152},
		{"cmd ahs pad", build(OpSCSICommand, 5, 5), both,
			Layout{AHSLen: 20, HeaderDigest: true, DataLen: 5, PadLen: 3, DataDigest: true},
			72, 80, 84},
		{"data digest needs data", build(OpDataOut, 0, 0), both,
			Layout{HeaderDigest: true}, 52, 52, 52},
		{"login default limit", build(OpLoginRequest, 0, 8192), LayoutParams{},
			Layout{DataLen: 8192}, 48, 8240, 8240},
		{"initiator receives", build(OpDataIn, 0, 1), LayoutParams{Receiver: RoleInitiator},
			Layout{DataLen: 1, PadLen: 3}, 48, 52, 52},
	} {
		l, err := c.b.Layout(c.p)
		if err != nil || l != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, l, err, c.want)
			continue
		}
		if l.HeaderEnd() != c.hdrEnd || l.DataOffset() != c.hdrEnd || l.DataEnd() != c.dataEnd ||
			l.Len() != c.total || l.HeaderLen() != BHSLen+l.AHSLen {
			t.Errorf("%s: offsets %d %d %d", c.name, l.HeaderEnd(), l.DataEnd(), l.Len())
		}
		n := NewLayout(l.AHSLen, l.DataLen, c.p.HeaderDigest, c.p.DataDigest)
		if n != l {
			t.Errorf("%s: sender layout %+v != %+v", c.name, n, l)
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		op     Opcode
		dsl    uint32
		p      LayoutParams
		reason RejectReason
		off    uint8
	}{
		{"reserved opcode", 0x07, 0, LayoutParams{}, RejectCommandNotSupported, 0},
		{"vendor opcode", 0x1c, 0, LayoutParams{}, RejectCommandNotSupported, 0},
		{"target opcode at target", OpSCSIResponse, 0, LayoutParams{}, RejectProtocolError, 0},
		{"initiator opcode at initiator", OpNOPOut, 0,
			LayoutParams{Receiver: RoleInitiator}, RejectProtocolError, 0},
		{"above login default", OpLoginRequest, 8193, LayoutParams{}, RejectProtocolError, 5},
		{"above declared", OpDataOut, 65537,
			LayoutParams{MaxRecvDataSegmentLength: 65536}, RejectProtocolError, 5},
	} {
		var b BHS
		b[0] = byte(c.op)
		b.SetLengths(0, c.dsl)
		l, err := b.Layout(c.p)
		var pe *PDUError
		if !errors.As(err, &pe) || pe.Reason != c.reason || pe.Offset != c.off || l != (Layout{}) {
			t.Errorf("%s: %+v %v", c.name, l, err)
		}
	}
}
