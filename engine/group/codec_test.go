package group

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"sluice/engine/proto/nvme"
	"sluice/engine/reservation"
)

// Seed values for the decoders' fuzz targets and round-trip tests.

func seedEntries() []Entry {
	scsi := reservation.SCSINexus("iqn.2024-01.io.example:host", 0x23d000000001, 1)
	return []Entry{
		{Kind: EntryReserve, ID: EntryID{1, 2, 3}, Vol: [16]byte{1}, Persist: true,
			Cmd: reservation.Command{Action: reservation.NVMeRegister,
				From: reservation.NVMeHost([16]byte{9}), ServiceKey: 0xAA, CPTPL: nvme.CPTPLSet}},
		{Kind: EntryReserve, ID: EntryID{2, 1, 9}, Vol: [16]byte{2},
			Cmd: reservation.Command{Action: reservation.SCSIRegisterMove, From: scsi, Key: 1,
				ServiceKey: 2, MoveTo: reservation.TransportID{}, APTPL: true, Unreg: true}},
		{Kind: EntryClear, ID: EntryID{3, 1, 1}, Vol: [16]byte{3}, Force: true},
		{Kind: EntrySetOwner, ID: EntryID{3, 1, 2}, Vol: [16]byte{3}, Node: 7},
		{Kind: EntryDesignate, ID: EntryID{3, 1, 3}, Node: 2},
		{Kind: EntryName, ID: EntryID{3, 1, 4}, Name: "g1"},
		{Kind: EntryConfirm, ID: EntryID{3, 1, 5}, Term: 4},
		{Kind: EntryPowerCycle, ID: EntryID{3, 1, 6}, Term: 5},
	}
}

func seedEnvelopes() []Envelope {
	m := raftpb.Message{Type: raftpb.MsgApp, To: 2, From: 1, Term: 3, Index: 5, LogTerm: 3,
		Entries: []raftpb.Entry{{Term: 3, Index: 6, Data: EncodeEntry(&seedEntries()[0])}}, Commit: 5}
	raw, _ := m.Marshal()
	e := seedEntries()[0]
	st := Status{NodeID: 1, Group: "g1", Members: []MemberStatus{{ID: 1, Addr: "a:1"}},
		BGLSync: &SyncStatus{Synchronized: true, LastAckMs: 5}}
	return []Envelope{
		{Kind: EnvRaft, From: 1, To: 2, FromAddr: "127.0.0.1:7001", Raft: raw},
		{Kind: EnvRequest, From: 2, To: 1, Request: &Request{ID: e.ID, Op: OpReserve, Vol: e.Vol,
			Cmd: e.Cmd, ReplyTo: 2, ReplyAddr: "127.0.0.1:7002", Since: 41, Resent: true, Try: 2, Term: 6}},
		{Kind: EnvRequest, From: 4, Request: &Request{ID: EntryID{4, 1, 1}, Op: OpAddMember, Node: 4,
			Addr: "127.0.0.1:7004", ReplyTo: 4, ReplyAddr: "127.0.0.1:7004"}},
		{Kind: EnvReply, From: 1, To: 2, Reply: &Reply{ID: e.ID, Index: 9, Result: reservation.Result{
			Notices: []reservation.Notice{{Kind: reservation.ReservationReleased,
				To: reservation.Subject{ID: reservation.NVMeHost([16]byte{7})}}}}}},
		{Kind: EnvReply, From: 1, To: 2, Reply: &Reply{ID: e.ID, Code: CodeNotSynchronized,
			Msg: ErrNotSynchronized.Error(), Try: 2}},
		{Kind: EnvReply, From: 1, To: 2, Reply: &Reply{ID: e.ID, Status: &st}},
		{Kind: EnvReport, From: 2, To: 1, Term: 3, Held: 1, Incarnation: 2},
		{Kind: EnvConfirm, From: 1, To: 2, Term: 3, Incarnation: 2},
		{Kind: EnvInvite, From: 1, To: 4, Group: "g1"},
		{Kind: EnvReply, From: 1, To: 2, Reply: &Reply{ID: e.ID, Index: 44, Partial: true, Try: 3,
			Result: reservation.Result{Status: reservation.StatusOK}}},
	}
}

func seedSnapshots() []SnapshotData {
	st := reservation.State{Generation: 3, Type: reservation.WriteExclusive, PTPL: true,
		Registrants: []reservation.Registrant{{Subject: reservation.Subject{
			ID: reservation.NVMeHost([16]byte{5})}, Key: 0xAB, Holder: true}}}
	return []SnapshotData{
		{Version: snapshotVersion, Incarnation: 1, Members: []Member{{ID: 1, Addr: "a:1"}}},
		{Version: snapshotVersion, Name: "g1", BGL: 2, Incarnation: 4, DecisionTerm: 7, LastPersist: 40,
			Members:   []Member{{ID: 1, Addr: "a:1"}, {ID: 2, Addr: "a:2"}, {ID: 3, Addr: "a:3", Learner: true}},
			Volumes:   []VolumeRecord{{NGUID: [16]byte{1}, Owner: 2, Index: 33, State: st}, {NGUID: [16]byte{2}}},
			IDHorizon: 12, AppliedIDs: []AppliedID{{ID: EntryID{2, 1, 7}, Index: 30, Persist: true},
				{ID: EntryID{3, 2, 1}, Index: 33, Status: reservation.StatusConflict},
				{ID: EntryID{1, 1, 9}, Index: 35, Code: CodeInvalid, More: true}}},
	}
}

// TestCodecRoundTrip: every seed value survives encode → decode unchanged.
func TestCodecRoundTrip(t *testing.T) {
	for _, e := range seedEntries() {
		got, err := DecodeEntry(EncodeEntry(&e))
		if err != nil || !reflect.DeepEqual(normEntry(got), normEntry(e)) {
			t.Errorf("entry %v: %v\n got %+v\nwant %+v", e.Kind, err, got, e)
		}
	}
	for _, env := range seedEnvelopes() {
		b := AppendFrame(nil, &env)
		got, n, need, err := DecodeFrame(b)
		if err != nil || need != 0 || n != len(b) || !bytes.Equal(EncodeEnvelope(&got), EncodeEnvelope(&env)) {
			t.Errorf("envelope %v: %v (n %d need %d)", env.Kind, err, n, need)
		}
	}
	for _, d := range seedSnapshots() {
		got, err := DecodeSnapshot(EncodeSnapshot(&d))
		if err != nil || !bytes.Equal(EncodeSnapshot(&got), EncodeSnapshot(&d)) {
			t.Errorf("snapshot: %v", err)
		}
	}
	cc := ConfContext{ID: EntryID{1, 2, 3}, Addr: "127.0.0.1:7000"}
	if got, err := DecodeConfContext(EncodeConfContext(&cc)); err != nil || got != cc {
		t.Errorf("conf context: %v %+v", err, got)
	}
}

// normEntry makes nil and empty slices equal, as msgpack does not tell them apart.
func normEntry(e Entry) Entry {
	if len(e.Cmd.TransportIDs) == 0 {
		e.Cmd.TransportIDs = nil
	}
	return e
}

// TestCheckMsgpack: lengths beyond the input and deep nesting are refused before the
// decoder can allocate for them.
func TestCheckMsgpack(t *testing.T) {
	bad := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},       // array32 of 2^32-1 elements
		{0xdf, 0x7f, 0xff, 0xff, 0xff},       // map32
		{0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00}, // bin32 longer than the input
		{0xc1},                               // never used
		{0x91},                               // truncated array
		{0x01, 0x02},                         // trailing bytes
		bytes.Repeat([]byte{0x91}, 40),       // nested too deep
	}
	for _, b := range bad {
		if err := checkMsgpack(b); err == nil {
			t.Errorf("% x accepted", b)
		}
		if _, err := DecodeEntry(b); err == nil {
			t.Errorf("% x decoded as an entry", b)
		}
	}
	for _, e := range seedEntries() {
		if err := checkMsgpack(EncodeEntry(&e)); err != nil {
			t.Errorf("valid entry refused: %v", err)
		}
	}
}

// FuzzDecodeEntry: the log entry decoder never panics, fails with a zero value, and
// decode → encode → decode round-trips.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range seedEntries() {
		f.Add(EncodeEntry(&e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !reflect.DeepEqual(e, Entry{}) {
				t.Fatalf("error %v with a non-zero entry", err)
			}
			return
		}
		b2 := EncodeEntry(&e)
		e2, err := DecodeEntry(b2)
		if err != nil || !bytes.Equal(EncodeEntry(&e2), b2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzDecodeEnvelope: the peer envelope decoder (and the raft message inside) never
// panics and round-trips.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, env := range seedEnvelopes() {
		f.Add(EncodeEnvelope(&env))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			if !reflect.DeepEqual(env, Envelope{}) {
				t.Fatalf("error %v with a non-zero envelope", err)
			}
			return
		}
		var m raftpb.Message
		_ = m.Unmarshal(env.Raft) // must not panic either
		b2 := EncodeEnvelope(&env)
		env2, err := DecodeEnvelope(b2)
		if err != nil || !bytes.Equal(EncodeEnvelope(&env2), b2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzDecodeFrame: the TCP framing never panics, never claims more than it was given,
// and asks for more bytes only below the frame limit.
func FuzzDecodeFrame(f *testing.F) {
	for _, env := range seedEnvelopes() {
		b := AppendFrame(nil, &env)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, n, need, err := DecodeFrame(b)
		switch {
		case err != nil:
			if n != 0 || need != 0 || !reflect.DeepEqual(env, Envelope{}) {
				t.Fatalf("error %v with n %d need %d", err, n, need)
			}
		case need > 0:
			if n != 0 || need > maxFrameBytes+frameHeaderBytes {
				t.Fatalf("need %d n %d", need, n)
			}
		default:
			if n < frameHeaderBytes || n > len(b) {
				t.Fatalf("used %d of %d", n, len(b))
			}
			b2 := AppendFrame(nil, &env)
			env2, n2, _, err := DecodeFrame(b2)
			if err != nil || n2 != len(b2) || !bytes.Equal(EncodeEnvelope(&env2), EncodeEnvelope(&env)) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// FuzzDecodeSnapshot: the snapshot data decoder never panics and round-trips.
func FuzzDecodeSnapshot(f *testing.F) {
	for _, d := range seedSnapshots() {
		f.Add(EncodeSnapshot(&d))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeSnapshot(b)
		if err != nil {
			if !reflect.DeepEqual(d, SnapshotData{}) {
				t.Fatalf("error %v with non-zero data", err)
			}
			return
		}
		b2 := EncodeSnapshot(&d)
		d2, err := DecodeSnapshot(b2)
		if err != nil || !bytes.Equal(EncodeSnapshot(&d2), b2) {
			t.Fatalf("round trip: %v", err)
		}
		st := newReplicated()
		st.restore(&d) // restoring any decodable snapshot must not panic
	})
}

// FuzzDecodeConfContext: the conf change context decoder never panics and round-trips.
func FuzzDecodeConfContext(f *testing.F) {
	f.Add(EncodeConfContext(&ConfContext{ID: EntryID{1, 2, 3}, Addr: "127.0.0.1:7000"}))
	f.Add(EncodeConfContext(&ConfContext{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConfContext(b)
		if err != nil {
			if c != (ConfContext{}) {
				t.Fatalf("error %v with a non-zero value", err)
			}
			return
		}
		c2, err := DecodeConfContext(EncodeConfContext(&c))
		if err != nil || c2 != c {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestWriteSeedCorpus regenerates testdata/fuzz from the seed values when
// GROUP_WRITE_CORPUS=1 (after a codec change); otherwise it checks the corpus exists.
func TestWriteSeedCorpus(t *testing.T) {
	corpus := map[string][][]byte{}
	for _, e := range seedEntries() {
		corpus["FuzzDecodeEntry"] = append(corpus["FuzzDecodeEntry"], EncodeEntry(&e))
	}
	for _, env := range seedEnvelopes() {
		corpus["FuzzDecodeEnvelope"] = append(corpus["FuzzDecodeEnvelope"], EncodeEnvelope(&env))
		corpus["FuzzDecodeFrame"] = append(corpus["FuzzDecodeFrame"], AppendFrame(nil, &env))
	}
	for _, d := range seedSnapshots() {
		corpus["FuzzDecodeSnapshot"] = append(corpus["FuzzDecodeSnapshot"], EncodeSnapshot(&d))
	}
	corpus["FuzzDecodeConfContext"] = [][]byte{
		EncodeConfContext(&ConfContext{ID: EntryID{1, 2, 3}, Addr: "127.0.0.1:7000"})}
	for target, inputs := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		if os.Getenv("GROUP_WRITE_CORPUS") == "" {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) < len(inputs) {
				t.Errorf("%s: seed corpus missing (run with GROUP_WRITE_CORPUS=1): %v", dir, err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range inputs {
			name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
