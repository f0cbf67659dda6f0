package group

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"sluice/engine/proto/nvme"
	"sluice/engine/reservation"
)

// TestBoltStorage: what Save, Compact, NextBoot and Reset write is what a reopen loads.
func TestBoltStorage(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenBolt(dir, BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := raftpb.Snapshot{Data: []byte("x"), Metadata: raftpb.SnapshotMetadata{Index: 1, Term: 1,
		ConfState: raftpb.ConfState{Voters: []uint64{1}}}}
	var ents []raftpb.Entry
	for i := uint64(2); i <= 10; i++ {
		ents = append(ents, raftpb.Entry{Index: i, Term: 2, Data: []byte{byte(i)}})
	}
	must(t, s.Save(raftpb.HardState{Term: 2, Vote: 1, Commit: 9}, ents, snap))
	// A conflicting suffix replaces the tail.
	must(t, s.Save(raftpb.HardState{Term: 3, Vote: 1, Commit: 9},
		[]raftpb.Entry{{Index: 9, Term: 3, Data: []byte{99}}}, raftpb.Snapshot{}))
	must(t, s.Compact(raftpb.Snapshot{Data: []byte("y"), Metadata: raftpb.SnapshotMetadata{Index: 6, Term: 2,
		ConfState: raftpb.ConfState{Voters: []uint64{1}}}}, 4))
	if b, _ := s.NextBoot(); b != 1 {
		t.Errorf("first boot %d", b)
	}
	must(t, s.Close())

	s, err = OpenBolt(dir, BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// After a reopen the log starts after the snapshot (the entries it covers are not
	// needed again).
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	hs, _, _ := s.InitialState()
	sn, _ := s.Snapshot()
	got, err := s.Entries(first, last+1, 1<<20)
	if err != nil || first != 7 || last != 9 || hs.Term != 3 || sn.Metadata.Index != 6 ||
		string(sn.Data) != "y" || got[len(got)-1].Data[0] != 99 {
		t.Fatalf("reloaded first %d last %d hs %+v snap %d %q entries %v err %v",
			first, last, hs, sn.Metadata.Index, sn.Data, got, err)
	}
	if b, _ := s.NextBoot(); b != 2 {
		t.Errorf("boot after reopen %d, want 2", b)
	}
	must(t, s.Reset())
	if sn, _ := s.Snapshot(); sn.Metadata.Index != 0 {
		t.Errorf("reset left snapshot %d", sn.Metadata.Index)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStandaloneBoltRestart: a standalone daemon (production loop, bbolt, TCP) admits a
// persistent registration and keeps it across a restart; a non-persistent one is gone.
func TestStandaloneBoltRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{NodeID: 1, DataDir: dir, PeerAddr: "127.0.0.1:0", NoSync: true,
		TickInterval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	volA, volB := [16]byte{1}, [16]byte{2}
	x, y := reservation.NVMeHost([16]byte{1}), reservation.NVMeHost([16]byte{2})
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmds := []struct {
		vol [16]byte
		cmd reservation.Command
	}{
		{volA, reservation.Command{Action: reservation.NVMeRegister, From: x, ServiceKey: 1, CPTPL: nvme.CPTPLSet}},
		{volA, reservation.Command{Action: reservation.NVMeAcquire, From: x, Key: 1, Type: reservation.WriteExclusive}},
		{volB, reservation.Command{Action: reservation.NVMeRegister, From: y, ServiceKey: 2}},
	}
	for _, c := range cmds {
		if res, err := n.Reserve(ctx, c.vol, c.cmd); err != nil || res.Status != reservation.StatusOK {
			t.Fatalf("%v: %v %v", c.cmd.Action, res.Status, err)
		}
	}
	must(t, n.Close())

	n, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Revalidate(ctx); err != nil {
		t.Fatal(err)
	}
	a, _ := n.Volume(volA)
	b, _ := n.Volume(volB)
	if !a.State.PTPL || !a.State.Holds(x) || b.State.Registered(y) {
		t.Fatalf("after restart: volA %+v, volB %+v", a.State, b.State)
	}
}
