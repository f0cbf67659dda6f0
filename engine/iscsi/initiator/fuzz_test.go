package initiator

import (
	"testing"

	proto "sluice/engine/proto/iscsi"
)

// FuzzRecv feeds arbitrary target-to-initiator bytes to a session with a read (tag
// 0, 32 KiB), a write awaiting R2Ts (tag 1, 8 KiB) and a ping in flight. flags: bit 0
// header digest, bit 1 data digest, bit 2 an ABORT TASK of the read in flight instead
// of the ping. Whatever arrives, the session must not panic, never place data outside
// a command's buffer or solicit past its length, keep its counters in range, and end
// with an error once the stream ends.
func FuzzRecv(f *testing.F) {
	f.Add(byte(0), validScript(false, false))
	f.Add(byte(3), validScript(true, true))
	f.Add(byte(0), validScript(false, false)[:100])
	f.Add(byte(4), put(&proto.TMFResponse{ITT: 0x80000001, StatSN: scriptStatSN, ExpCmdSN: 3,
		MaxCmdSN: scriptMaxCmd}, nil, false, false))
	f.Fuzz(func(t *testing.T, flags byte, stream []byte) {
		hd, dd := flags&1 != 0, flags&2 != 0
		s, _ := scriptSession(stream, hd, dd)
		if flags&4 != 0 {
			s.ctl = ctlReq{active: true, op: proto.OpTMFResponse, itt: 0x80000001, tmf: proto.TMFAbortTask,
				tmfRef: readITT}
		}
		var err error
		for range len(stream) + 1 {
			if err = s.step(); err != nil {
				break
			}
		}
		if err == nil || s.Err() == nil {
			t.Fatal("the stream ended without an error")
		}
		for i := range s.slots[:2] {
			sl := &s.slots[i]
			if sl.got > uint32(len(sl.buf)) || sl.solicited > sl.edtl || sl.res.DataIn > sl.edtl {
				t.Fatalf("slot %d: got %d, solicited %d of %d", i, sl.got, sl.solicited, sl.edtl)
			}
		}
		// Every command is either still on the wire or completed, never both.
		if s.nWire < 0 || s.done.size+s.nWire != 2 || s.nOut != 2 {
			t.Fatalf("counters: wire %d, done %d, outstanding %d", s.nWire, s.done.size, s.nOut)
		}
		if n := s.drain(make([]Completion, 4)); n+s.nWire != 2 || s.nOut != s.nWire {
			t.Fatalf("%d completions with %d on the wire", n, s.nWire)
		}
	})
}
