package iscsi

import (
	"encoding/binary"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// seedPDU frames one PDU without digests for the seed corpus.
func seedPDU(put func(b *proto.BHS), data []byte) []byte {
	var b proto.BHS
	put(&b)
	out := append([]byte(nil), b[:]...)
	out = append(out, data...)
	return append(out, make([]byte, proto.PadLen(uint32(len(data))))...)
}

func fuzzSeeds() [][]byte {
	cat := func(ps ...[]byte) []byte {
		var out []byte
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
	cmd := func(c proto.SCSICommand, data []byte) []byte {
		c.DataSegmentLength = uint32(len(data))
		return seedPDU(c.Put, data)
	}
	dout := func(d proto.DataOut, data []byte) []byte {
		d.DataSegmentLength = uint32(len(data))
		return seedPDU(d.Put, data)
	}
	nop := proto.NOPOut{Immediate: true, DataSegmentLength: 5, ITT: 9, TTT: proto.ReservedTag}
	text := proto.AppendKey(nil, "SendTargets", "All")
	read := proto.SCSICommand{Final: true, Read: true, Attr: proto.TaskSimple, ITT: 1,
		ExpectedDataTransferLength: 4096, CmdSN: 1, CDB: read16(0, 8)}
	write := proto.SCSICommand{Final: true, Write: true, Attr: proto.TaskSimple, ITT: 2,
		ExpectedDataTransferLength: 8192, CmdSN: 1, CDB: write16(0, 16)}
	withAHS := read
	withAHS.TotalAHSLength = 2
	ahsCmd := seedPDU(withAHS.Put, nil)
	ahsCmd = append(ahsCmd[:proto.BHSLen], 0, 5, 1, 0, 0xde, 0xad, 0xbe, 0xef)
	huge := seedPDU((&proto.NOPOut{Immediate: true, ITT: 3, TTT: proto.ReservedTag}).Put, nil)
	huge[5], huge[6], huge[7] = 0xff, 0xff, 0xff
	return [][]byte{
		{},
		seedPDU(nop.Put, []byte("hello")),
		cmd(read, nil),
		cmd(write, pattern(4096, 1)),
		cat(cmd(write, nil), dout(proto.DataOut{Final: true, ITT: 2, TTT: proto.ReservedTag}, pattern(8192, 2))),
		dout(proto.DataOut{Final: true, ITT: 77, TTT: 5}, pattern(100, 3)),
		seedPDU((&proto.TextRequest{Immediate: true, Final: true, DataSegmentLength: uint32(len(text)), ITT: 4,
			TTT: proto.ReservedTag}).Put, text),
		seedPDU((&proto.TMFRequest{Immediate: true, Function: proto.TMFLogicalUnitReset, ITT: 5,
			ReferencedTaskTag: proto.ReservedTag}).Put, nil),
		cat(cmd(write, nil), seedPDU((&proto.TMFRequest{Immediate: true, Function: proto.TMFAbortTask, ITT: 6,
			ReferencedTaskTag: 2, RefCmdSN: 1}).Put, nil)),
		cat(cmd(write, pattern(4096, 4)), seedPDU((&proto.LogoutRequest{Immediate: true, ITT: 7}).Put, nil)),
		seedPDU((&proto.SNACKRequest{ITT: 1}).Put, nil),
		seedPDU((&proto.LoginRequest{Transit: true, CSG: 1, NSG: 3}).Put, nil),
		ahsCmd,
		huge,
		binary.BigEndian.AppendUint64(make([]byte, 40), 0x3c00000000000000),
	}
}

// FuzzPDUStream feeds arbitrary bytes to a connection that has logged in (with or
// without digests) and checks that the target survives: no panic (a reactor panic ends
// the test binary), the fuzzed connection goes away once its socket closes, and a
// second, well-behaved session goes on serving pings and I/O.
func FuzzPDUStream(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(uint8(0), s)
	}
	f.Add(uint8(3), fuzzSeeds()[3])
	e := newEnv(f, envOpts{})
	good := connect(f, e.addr, loginOpts{})
	back := make([]byte, 4096)
	f.Fuzz(func(t *testing.T, digests uint8, input []byte) {
		good.t = t
		in := dial(t, e.addr)
		in.mustLogin(loginOpts{hd: digests&1 != 0, dd: digests&2 != 0})
		in.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		in.c.Write(input) // the target may close first
		// Read what comes for a moment, as an initiator would, then hang up.
		in.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			if _, err := in.c.Read(in.rbuf); err != nil {
				break
			}
		}
		in.c.Close()
		good.ping([]byte("still serving"))
		// The fuzzed session may have reset the LU (a unit attention for everyone),
		// written over any block, or set SWP in the Control mode page: the good
		// session reads, and tells a unit attention from a failure.
		for i := 0; ; i++ {
			r := good.readBlocks(16, back)
			if r.status == 0 {
				break
			}
			if r.sense.Key != pscsi.SenseKeyUnitAttention || i == 4 {
				r.good(t, "read on the good session")
			}
		}
		waitFor(t, 10*time.Second, "the fuzzed connection and its session gone", func() bool {
			s := e.tgt.Stats()
			return s.Connections == 1 && s.Sessions == 1
		})
	})
}
