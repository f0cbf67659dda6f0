package interop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"sluice/engine/iscsi"
	"sluice/engine/iscsi/initiator"
	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// The iSCSI lifecycle events, as lifecycle_test.go runs NVMe/TCP's: rounds of each event
// with writes in flight on the daemon's file-backed default volume (LUN 0 of
// iqn.2026-11.dev.sluice:vol0), through engine/iscsi/initiator over real TCP; even
// rounds send the data as immediate data, odd ones in answer to R2Ts. Every
// write stamps each sector with its LBA, the tag's generation and a fill derived from
// both; after each round a fresh session logs in and reads the round's region back:
// every sector must hold the generation last acknowledged for it or one submitted
// after it (an unacknowledged write may or may not have landed, sector by sector, but
// nothing older and nothing torn). After every round the daemon must hold no iSCSI
// connection and serve the fresh session.
//
// Durability: the volume is a file bdev with a volatile write cache, FUA and SYNCHRONIZE
// CACHE. Across kill -9 only writes acknowledged with FUA are guaranteed, so that round
// writes with FUA and counts only FUA writes as acknowledged. Across SIGTERM the daemon
// drains and flushes every volume before exiting 0, so every acknowledged write counts,
// FUA or not.

const (
	iscVol0     = "iqn.2026-11.dev.sluice:vol0"
	iscFaulty   = "iqn.2026-11.dev.sluice:faulty"
	iscQD       = 16
	iscSlotLBAs = 128                 // each tag owns 64 KiB of the region
	iscRegion   = iscQD * iscSlotLBAs // LBAs per round
	// iscMinRounds and iscMaxRounds bound the rounds of an event; within them an event
	// runs until its share of the time budget is spent.
	iscMinRounds = 20
	iscMaxRounds = 60
)

// iscBlocks is tag's write size in blocks: 4 KiB for even tags, 64 KiB for odd ones.
func iscBlocks(tag int) uint32 {
	if tag%2 == 0 {
		return 8
	}
	return iscSlotLBAs
}

// iscStamp fills b, written at lba with generation gen: per 512-byte sector its LBA
// (8 bytes), gen (4), then bytes derived from both, so that a stale, misplaced or torn
// sector is told apart.
func iscStamp(b []byte, lba uint64, gen uint32) {
	for s := 0; s < len(b)/512; s++ {
		sec := b[s*512 : (s+1)*512]
		binary.LittleEndian.PutUint64(sec, lba+uint64(s))
		binary.LittleEndian.PutUint32(sec[8:], gen)
		binary.LittleEndian.PutUint32(sec[12:], 0x15c5)
		x := uint32(lba+uint64(s))*2654435761 ^ gen*40503
		for i := 16; i < 512; i++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			sec[i] = byte(x)
		}
	}
}

// iscCheck checks a sector read at lba: generation within [lo, hi], or never written
// when lo is 0; its content whole.
func iscCheck(sec []byte, lba uint64, lo, hi uint32) error {
	zero := true
	for _, c := range sec {
		zero = zero && c == 0
	}
	if zero {
		if lo == 0 {
			return nil
		}
		return fmt.Errorf("lba %d: zeros, want generation %d..%d", lba, lo, hi)
	}
	gen := binary.LittleEndian.Uint32(sec[8:])
	if got := binary.LittleEndian.Uint64(sec); got != lba {
		return fmt.Errorf("lba %d holds the sector of lba %d", lba, got)
	}
	if gen < lo || gen > hi {
		return fmt.Errorf("lba %d: generation %d, want %d..%d (acknowledged..submitted)", lba, gen, lo, hi)
	}
	want := make([]byte, 512)
	iscStamp(want, lba, gen)
	if string(want) != string(sec) {
		return fmt.Errorf("lba %d: generation %d torn", lba, gen)
	}
	return nil
}

// iscLoad keeps QD16 writes in flight on a session: tag t always writes the same
// blocks of the round's region, one write at a time, so the generation acknowledged
// last and the one submitted last bound what each sector may hold.
type iscLoad struct {
	s      *initiator.Session
	lun    uint16
	region uint64
	fua    bool
	bufs   [iscQD][]byte
	gen    [iscQD]uint32 // submitted last
	acked  [iscQD]uint32 // acknowledged last
	busy   [iscQD]bool
	// counts by outcome.
	good, failed, aborted, lost int
	senses                      []pscsi.Sense
	cs                          []initiator.Completion
}

func newISCLoad(s *initiator.Session, region uint64, fua bool) *iscLoad {
	l := &iscLoad{s: s, region: region, fua: fua, cs: make([]initiator.Completion, iscQD)}
	for t := range l.bufs {
		l.bufs[t] = make([]byte, 512*iscBlocks(t))
	}
	return l
}

func (l *iscLoad) lba(tag int) uint64 { return l.region + uint64(tag*iscSlotLBAs) }

// submit queues tag's next generation.
func (l *iscLoad) submit(tag int) error {
	l.gen[tag]++
	iscStamp(l.bufs[tag], l.lba(tag), l.gen[tag])
	l.busy[tag] = true
	return l.s.SubmitWrite(l.lun, l.lba(tag), iscBlocks(tag), l.bufs[tag], l.fua, uint16(tag))
}

// start fills the queue.
func (l *iscLoad) start() error {
	for tag := range iscQD {
		if err := l.submit(tag); err != nil {
			return err
		}
	}
	return l.s.Flush()
}

// take records completions; with again, each finished tag writes its next generation.
func (l *iscLoad) take(cs []initiator.Completion, again bool) error {
	for _, c := range cs {
		tag := int(c.Tag)
		l.busy[tag] = false
		switch {
		case c.Err == nil && c.Good():
			l.good++
			l.acked[tag] = l.gen[tag]
		case errors.Is(c.Err, initiator.ErrAborted):
			l.aborted++
			continue // its fate is unknown: the tag writes no more this round
		case c.Err == nil:
			l.failed++
			if c.SenseLen > 0 {
				l.senses = append(l.senses, c.Sense)
			}
		default:
			l.lost++
			continue
		}
		if again {
			if err := l.submit(tag); err != nil {
				return err
			}
		}
	}
	return nil
}

// run reaps and resubmits until n writes completed, or an error.
func (l *iscLoad) run(n int) error {
	for done := 0; done < n; {
		k, err := l.s.Reap(l.cs)
		if err2 := l.take(l.cs[:k], true); err2 != nil {
			return err2
		}
		if err != nil {
			return l.dead(err)
		}
		done += k
	}
	return nil
}

// drain reaps what is outstanding without resubmitting, until the session has
// nothing left or fails.
func (l *iscLoad) drain() error {
	for l.s.Outstanding() > 0 {
		k, err := l.s.Reap(l.cs)
		l.take(l.cs[:k], false)
		if err != nil {
			return l.dead(err)
		}
	}
	return nil
}

// dead counts the writes a failed session leaves without status.
func (l *iscLoad) dead(err error) error {
	l.lost += l.s.Outstanding()
	return err
}

// iscDial logs in to node with the options the tests share.
func iscDial(t *testing.T, d *daemon, node string, o initiator.Options) *initiator.Session {
	t.Helper()
	s, err := iscTryDial(d, node, o)
	if err != nil {
		t.Fatalf("login to %s: %v", node, err)
	}
	return s
}

func iscTryDial(d *daemon, node string, o initiator.Options) (*initiator.Session, error) {
	o.TargetName = node
	if o.InitiatorName == "" {
		o.InitiatorName = "iqn.2026-11.dev.sluice:lifecycle"
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = iscQD
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", d.iscsiPort), o)
	if err != nil {
		return nil, err
	}
	if err := s.ClearUnitAttention(ctx, 0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func iscCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// iscNoConnections waits until the daemon lists no iSCSI connection.
func iscNoConnections(t *testing.T, d *daemon, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var cs []iscsi.ConnectionInfo
		d.call("iscsi_get_connections", nil, &cs)
		if len(cs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d iSCSI connections left with no initiator: %+v", what, len(cs), cs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// iscVerify checks, through a fresh session to node, that the daemon serves, that the
// load's region holds what it acknowledged, and that no connection is left afterwards.
func iscVerify(t *testing.T, d *daemon, node string, l *iscLoad, what string) {
	t.Helper()
	iscNoConnections(t, d, what+", before the check")
	s := iscDial(t, d, node, initiator.Options{})
	defer s.Close()
	buf := make([]byte, 512*iscRegion)
	if err := s.Read16(iscCtx(t), l.lun, l.region, iscRegion, buf); err != nil {
		t.Fatalf("%s: reading back: %v", what, err)
	}
	for tag := range iscQD {
		for b := range int(iscBlocks(tag)) {
			off := (tag*iscSlotLBAs + b) * 512
			if err := iscCheck(buf[off:off+512], l.lba(tag)+uint64(b), l.acked[tag], l.gen[tag]); err != nil {
				t.Fatalf("%s: tag %d: %v", what, tag, err)
			}
		}
	}
	if err := s.Logout(iscCtx(t)); err != nil {
		t.Fatalf("%s: logout of the checking session: %v", what, err)
	}
	iscNoConnections(t, d, what+", after the check")
}

// iscRounds runs round until iscMaxRounds, or until budget is spent once
// iscMinRounds have run, and logs how many ran and how their writes ended.
func iscRounds(t *testing.T, budget time.Duration, round func(r int) *iscLoad) {
	start := time.Now()
	n, acked, good, failed, aborted, lost := 0, 0, 0, 0, 0, 0
	for ; n < iscMaxRounds && (n < iscMinRounds || time.Since(start) < budget); n++ {
		l := round(n)
		if t.Failed() {
			return
		}
		for tag := range iscQD {
			if l.acked[tag] > 0 {
				acked++
			}
		}
		good, failed, aborted, lost = good+l.good, failed+l.failed, aborted+l.aborted, lost+l.lost
	}
	t.Logf("%d rounds in %v: writes GOOD %d, CHECK CONDITION %d, aborted %d, without status %d; "+
		"%d tag regions verified against an acknowledged generation", n, time.Since(start).Round(time.Millisecond),
		good, failed, aborted, lost, acked)
}

// iscOpts varies the data path by round: even rounds send each write as immediate
// data, odd ones through R2Ts of at most 16 KiB (four per 64 KiB write).
func iscOpts(r int) initiator.Options {
	if r%2 == 0 {
		return initiator.Options{}
	}
	no := false
	return initiator.Options{ImmediateData: &no, MaxBurstLength: 16384, FirstBurstLength: 16384}
}

// iscRegionOf gives each event and round its own 1 MiB of the 1 GiB volume.
func iscRegionOf(event, round int) uint64 { return uint64(event*iscMaxRounds+round) * iscRegion }

func TestISCSILifecycleUnderWriteLoad(t *testing.T) {
	d := newDaemon(t, "--cores", "0,1")
	var nodes []iscsi.TargetNodeInfo
	d.call("iscsi_get_target_nodes", nil, &nodes)
	var vol0 iscsi.TargetNodeInfo
	for _, n := range nodes {
		if n.Name == iscVol0 {
			vol0 = n
		}
	}
	if vol0.Name == "" {
		t.Fatalf("no %s among %+v", iscVol0, nodes)
	}
	const budget = 2 * time.Second
	t.Run("connection_reset", func(t *testing.T) {
		iscRounds(t, budget, func(r int) *iscLoad {
			l := iscLoaded(t, d, iscRegionOf(0, r), iscOpts(r))
			l.s.Reset() // RST with the writes in flight
			if err := l.drain(); !errors.Is(err, initiator.ErrClosed) {
				t.Fatalf("round %d: after the reset: %v", r, err)
			}
			iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
			return l
		})
	})
	for _, ev := range []struct {
		name  string
		round func(t *testing.T, d *daemon, r int) *iscLoad
	}{{"logout", iscLogoutRound}, {"abort_task", iscAbortRound}, {"lun_reset", iscResetRound},
		{"session_reinstatement", iscReinstateRound}} {
		t.Run(ev.name, func(t *testing.T) {
			iscRounds(t, budget, func(r int) *iscLoad { return ev.round(t, d, r) })
		})
	}
	t.Run("delete_target_node", func(t *testing.T) {
		iscRounds(t, budget, func(r int) *iscLoad { return iscDeleteNodeRound(t, d, r, vol0) })
	})
	t.Run("error_and_delay_bdev", func(t *testing.T) { iscFaultyRounds(t, d, budget) })
	noPanicLogged(t, d)
	d.stop()
	noPanicLogged(t, d)
}

// iscLoaded logs in to vol0, fills the queue and lets a few writes complete, so that
// some are acknowledged and sixteen are in flight.
func iscLoaded(t *testing.T, d *daemon, region uint64, o initiator.Options) *iscLoad {
	t.Helper()
	s := iscDial(t, d, iscVol0, o)
	t.Cleanup(func() { s.Close() })
	l := newISCLoad(s, region, false)
	if err := l.start(); err != nil {
		t.Fatal(err)
	}
	if err := l.run(2 * iscQD); err != nil {
		t.Fatalf("writes: %v", err)
	}
	return l
}

// iscLogoutRound logs out with sixteen writes in flight: the target answers them
// before the Logout Response, so every one is acknowledged.
func iscLogoutRound(t *testing.T, d *daemon, r int) *iscLoad {
	l := iscLoaded(t, d, iscRegionOf(1, r), iscOpts(r))
	if err := l.s.Logout(iscCtx(t)); err != nil {
		t.Fatalf("round %d: logout with writes in flight: %v", r, err)
	}
	err := l.drain()
	if err != nil && !errors.Is(err, initiator.ErrClosed) || !errors.Is(l.s.Err(), initiator.ErrClosed) {
		t.Fatalf("round %d: after the logout: %v (session %v)", r, err, l.s.Err())
	}
	if l.lost != 0 || l.failed != 0 || l.aborted != 0 {
		t.Fatalf("round %d: %d writes without status at logout, %d failed", r, l.lost, l.failed)
	}
	iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
	return l
}

// iscAbortRound aborts one of sixteen writes in flight: it ends without status or
// completed first; the rest complete GOOD.
func iscAbortRound(t *testing.T, d *daemon, r int) *iscLoad {
	l := iscLoaded(t, d, iscRegionOf(2, r), iscOpts(r))
	tag := uint16(r % iscQD)
	code, err := l.s.AbortTask(iscCtx(t), tag)
	if err != nil || code != proto.TMFComplete && code != proto.TMFTaskNotExist {
		t.Fatalf("round %d: ABORT TASK: %v %v", r, code, err)
	}
	if err := l.drain(); err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	if l.failed != 0 || l.lost != 0 || l.aborted > 1 {
		t.Fatalf("round %d: %d failed, %d lost, %d aborted", r, l.failed, l.lost, l.aborted)
	}
	iscLastCheck(t, l, r)
	iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
	return l
}

// iscLastCheck shows the session still serves after a task management function, then
// logs it out.
func iscLastCheck(t *testing.T, l *iscLoad, r int) {
	t.Helper()
	if err := l.s.ClearUnitAttention(iscCtx(t), 0); err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	if err := l.s.Ping(iscCtx(t), []byte("alive")); err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	if err := l.s.Logout(iscCtx(t)); err != nil {
		t.Fatalf("round %d: logout: %v", r, err)
	}
}

// iscResetRound sends LOGICAL UNIT RESET with sixteen writes in flight: each ends
// without status or completed first.
func iscResetRound(t *testing.T, d *daemon, r int) *iscLoad {
	l := iscLoaded(t, d, iscRegionOf(3, r), iscOpts(r))
	if err := l.s.LUNReset(iscCtx(t), 0); err != nil {
		t.Fatalf("round %d: LUN RESET: %v", r, err)
	}
	if err := l.drain(); err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	if l.failed != 0 || l.lost != 0 {
		t.Fatalf("round %d: %d failed, %d lost", r, l.failed, l.lost)
	}
	iscLastCheck(t, l, r)
	iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
	return l
}

// iscReinstateRound logs in again with the ISID of a session that has sixteen writes
// in flight: the target ends the old session, the new one serves.
func iscReinstateRound(t *testing.T, d *daemon, r int) *iscLoad {
	l := iscLoaded(t, d, iscRegionOf(4, r), iscOpts(r))
	o := iscOpts(r)
	o.ISID = l.s.Params().ISID
	n := iscDial(t, d, iscVol0, o)
	defer n.Close()
	err := l.drain() // the writes may all have been answered before the old session ended
	if err == nil {
		err = l.s.Ping(iscCtx(t), nil)
	}
	if !errors.Is(err, initiator.ErrDisconnected) {
		t.Fatalf("round %d: the reinstated session: %v", r, err)
	}
	if err := n.Ping(iscCtx(t), nil); err != nil {
		t.Fatalf("round %d: the new session: %v", r, err)
	}
	if err := n.Logout(iscCtx(t)); err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
	return l
}

// iscBackground keeps the load running on its own goroutine until the session fails;
// acked is closed once n writes completed.
func iscBackground(l *iscLoad, n int) (acked <-chan struct{}, done <-chan error) {
	a, e := make(chan struct{}), make(chan error, 1)
	go func() {
		err := l.run(n)
		close(a)
		if err == nil {
			err = l.run(1 << 30)
		}
		e <- err
	}()
	return a, e
}

// iscDeleteNodeRound deletes vol0's target node with writes in flight, then creates
// it again as it was.
func iscDeleteNodeRound(t *testing.T, d *daemon, r int, vol0 iscsi.TargetNodeInfo) *iscLoad {
	s := iscDial(t, d, iscVol0, iscOpts(r))
	defer s.Close()
	l := newISCLoad(s, iscRegionOf(5, r), false)
	if err := l.start(); err != nil {
		t.Fatal(err)
	}
	acked, done := iscBackground(l, 2*iscQD)
	<-acked
	d.call("iscsi_delete_target_node", iscsi.NameParams{Name: iscVol0}, nil)
	if err := <-done; !errors.Is(err, initiator.ErrDisconnected) {
		t.Fatalf("round %d: writes to a deleted node: %v", r, err)
	}
	d.call("iscsi_create_target_node", iscsi.NodeParams{Name: vol0.Name, AliasName: vol0.AliasName,
		LUNs: vol0.LUNs, PGIGMaps: vol0.PGIGMaps, QueueDepth: vol0.QueueDepth}, nil)
	iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
	return l
}

// iscFaultyRounds exports an error bdev over a delay bdev over a malloc bdev as a
// second node. Each round keeps sixteen writes in flight (2 ms each in the delay
// bdev), makes the next three writes fail in the error bdev, then one read: each must
// end in CHECK CONDITION with MEDIUM ERROR sense, none may hang, and the writes that
// succeeded must read back.
func iscFaultyRounds(t *testing.T, d *daemon, budget time.Duration) {
	d.call("bdev_malloc_create", map[string]any{"name": "iscm0", "num_blocks": 8 * iscRegion,
		"block_size": 512}, nil)
	d.call("bdev_delay_create", map[string]any{"name": "iscd0", "base_bdev_name": "iscm0",
		"avg_read_latency": 200, "p99_read_latency": 400, "avg_write_latency": 2000,
		"p99_write_latency": 4000}, nil)
	d.call("bdev_error_create", map[string]any{"base_name": "iscd0"}, nil)
	d.call("iscsi_create_target_node", iscsi.NodeParams{Name: iscFaulty,
		LUNs:     []iscsi.LUNInfo{{BdevName: "EE_iscd0"}},
		PGIGMaps: []iscsi.PGIGMap{{PGTag: 1, IGTag: 1}}}, nil)
	inject := func(io string, n int) {
		d.call("bdev_error_inject_error", map[string]any{"name": "EE_iscd0", "io_type": io,
			"error_type": "failure", "num": n}, nil)
	}
	iscRounds(t, budget, func(r int) *iscLoad {
		s := iscDial(t, d, iscFaulty, iscOpts(r))
		defer s.Close()
		l := newISCLoad(s, uint64(r%8)*iscRegion, false)
		// The region served an earlier round: zero it, so that it holds nothing older
		// than this round's first generation.
		if err := s.Write16(iscCtx(t), 0, l.region, iscRegion, make([]byte, 512*iscRegion), false); err != nil {
			t.Fatalf("round %d: zeroing: %v", r, err)
		}
		if err := l.start(); err != nil {
			t.Fatal(err)
		}
		if err := l.run(iscQD); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		inject("write", 3)
		for l.failed < 3 {
			if err := l.run(1); err != nil {
				t.Fatalf("round %d: waiting for the injected failures: %v", r, err)
			}
		}
		if err := l.drain(); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		for _, sn := range l.senses {
			if sn.Key != pscsi.SenseKeyMediumError {
				t.Fatalf("round %d: failed write with sense %v %v, want MEDIUM ERROR", r, sn.Key, sn.Code)
			}
		}
		inject("read", 1)
		err := s.Read16(iscCtx(t), 0, l.region, 8, make([]byte, 4096))
		if !initiator.IsSense(err, pscsi.SenseKeyMediumError) {
			t.Fatalf("round %d: read with an injected failure: %v", r, err)
		}
		if err := s.Logout(iscCtx(t)); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		iscVerify(t, d, iscFaulty, l, fmt.Sprintf("round %d", r))
		return l
	})
	d.call("iscsi_delete_target_node", iscsi.NameParams{Name: iscFaulty}, nil)
}

// TestISCSIRestartUnderWriteLoad: SIGTERM with writes in flight (the daemon must exit 0
// within its deadline), and kill -9 with FUA writes in flight; after each restart every
// acknowledged write is on the volume and the daemon serves.
func TestISCSIRestartUnderWriteLoad(t *testing.T) {
	d := newDaemon(t, "--cores", "0,1")
	const budget = 5 * time.Second
	for _, tc := range []struct {
		name  string
		event int
		fua   bool
		stop  func()
	}{
		{"sigterm", 6, false, d.stop},
		{"kill9", 7, true, d.kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var worst time.Duration
			iscRounds(t, budget, func(r int) *iscLoad {
				s := iscDial(t, d, iscVol0, iscOpts(r))
				defer s.Close()
				l := newISCLoad(s, iscRegionOf(tc.event, r), tc.fua)
				if err := l.start(); err != nil {
					t.Fatal(err)
				}
				acked, done := iscBackground(l, 2*iscQD)
				<-acked
				start := time.Now()
				tc.stop() // SIGTERM: d.stop fails the test unless the exit status is 0
				worst = max(worst, time.Since(start))
				if worst > 30*time.Second {
					t.Fatalf("round %d: the daemon took %v to stop, beyond its 30 s drain deadline", r, worst)
				}
				if err := <-done; err == nil || errors.Is(err, initiator.ErrProtocol) {
					t.Fatalf("round %d: writes across the daemon's end: %v", r, err)
				}
				noPanicLogged(t, d)
				d.start()
				iscVerify(t, d, iscVol0, l, fmt.Sprintf("round %d", r))
				return l
			})
			t.Logf("slowest stop: %v", worst.Round(time.Millisecond))
		})
	}
	iscNoConnections(t, d, "the end")
	noPanicLogged(t, d)
}
