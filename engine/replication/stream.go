package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/probe"
)

// A stream is one session of a volume's replication over one tunnel: opened when the
// tunnel comes up, ended when it dies. The volume outlives it; what a dead stream had
// in flight fails back to the regions, which the next stream resynchronizes.

const (
	// syncWindowBytes bounds the resync data in flight: enough to fill a WAN pipe,
	// small enough that live writes are not starved behind it.
	syncWindowBytes = 16 << 20
	// syncChunkBytes is one resync frame's data.
	syncChunkBytes = 256 << 10
	// openTimeout bounds the volume_open exchange and a key exchange.
	openTimeout = 10 * time.Second
	// retryEvery paces a volume's attempts to open a stream on a live tunnel.
	retryEvery = 500 * time.Millisecond
)

type stream struct {
	v       *volume
	p       *Partnership
	tc      *tunnelClient
	enc     *keyMaterial // nil for a volume without encryption
	partner string
	link    *linkConn
	w       *bufio.Writer
	scratch []byte

	mu       sync.Mutex
	dead     bool               // +checklocks:mu
	err      error              // +checklocks:mu
	inflight map[uint64]*record // +checklocks:mu
	// writing is the record whose frame send is writing: its buffer is being read, so
	// die leaves it (orphaned) for send to fail once the write is over.
	writing  *record // +checklocks:mu
	orphaned bool    // +checklocks:mu
	died     chan struct{}
}

// runner keeps a volume's stream going on its partnership's tunnel.
type runner struct {
	v      *volume
	p      *Partnership
	cancel context.CancelFunc
	done   chan struct{}
}

func (v *volume) attach(p *Partnership, mode Mode, journalCap int64, passphrase []byte) error {
	v.runMu.Lock()
	defer v.runMu.Unlock()
	if v.runner != nil {
		return fmt.Errorf("volume %q already replicates to %q: %w", v.name, v.runner.p.name, ErrExists)
	}
	if journalCap <= 0 {
		journalCap = DefaultJournalBytes
	}
	if err := v.startTracking(); err != nil {
		return err
	}
	v.att.Store(&attachment{partner: p.name, mode: mode, journalCap: journalCap, passphrase: passphrase})
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{v: v, p: p, cancel: cancel, done: make(chan struct{})}
	v.runner = r
	go r.run(ctx)
	return nil
}

// detach stops the runner: the stream ends and every frame in flight fails back.
func (v *volume) detach() *runner {
	v.runMu.Lock()
	r := v.runner
	v.runner = nil
	v.runMu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	<-r.done
	v.att.Store(nil)
	return r
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	v := r.v
	for ctx.Err() == nil {
		tc, err := r.p.awaitTunnel(ctx)
		if err != nil {
			return
		}
		err = v.session(ctx, r.p, tc)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			v.st.setErr(err)
			v.log.Warn("replication: stream ended", "volume", v.name, "partnership", r.p.name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryEvery):
		}
	}
	if v.tracked.Load() {
		v.setState(VolStateDisconnected)
	}
}

// session runs one stream over tc until it fails or ctx ends.
func (v *volume) session(ctx context.Context, p *Partnership, tc *tunnelClient) error {
	v.setState(VolStateConnecting)
	defer func() {
		if v.State() != VolStateRefused {
			v.setState(VolStateDisconnected)
		}
	}()
	enc, err := v.svc.encryption(v)
	if err != nil {
		v.setState(VolStateRefused)
		return err
	}
	if enc != nil {
		if err := exchangeKeys(ctx, tc, p, v, enc); err != nil {
			if errors.Is(err, errRefused) {
				v.setState(VolStateRefused)
			}
			return err
		}
	}
	link, err := tc.open(LinkData, v.name)
	if err != nil {
		return err
	}
	st, err := v.open(ctx, p, link, enc != nil)
	if err != nil {
		link.Close()
		if errors.Is(err, errRefused) {
			v.setState(VolStateRefused)
		}
		return err
	}
	v.st.lastErr.Store(nil)
	s := &stream{v: v, p: p, tc: tc, enc: enc, partner: p.name, link: link, w: bufio.NewWriterSize(link, 256<<10),
		inflight: map[uint64]*record{}, died: make(chan struct{})}
	full, fresh := v.decideSync(st)
	v.stream.Store(s)
	go s.readAcks()
	// A partner left inconsistent (a pass cut short) needs a pass, even an empty one, to
	// hear that its copy is consistent again.
	err = s.resyncLoop(ctx, full, fresh, full || st.Flags&FlagComplete == 0)
	s.die(err)
	v.stream.CompareAndSwap(s, nil)
	return s.cause()
}

// errRefused marks the partner's refusal of the volume: retrying does not cure it.
var errRefused = errors.New("replication: partner refused the volume")

// open sends hello and volume_open on the data link and reads the partner's state.
func (v *volume) open(ctx context.Context, p *Partnership, link *linkConn, encrypted bool) (Frame, error) {
	epoch, _ := v.epoch()
	uuid := v.base.UUID()
	flags := uint32(0)
	if encrypted {
		flags |= FlagEncrypted
	}
	if bitAny(v.rg.resync) {
		flags |= FlagResync
	}
	frames := []Frame{
		{Type: FrameHello, Text: p.name, Flags: uint32(LinkData), Seq: ProtocolVersion},
		{Type: FrameVolumeOpen, Volume: v.name, UUID: uuid[:], Size: v.sizeBytes,
			BlockSize: v.blockSize, Epoch: epoch, Flags: flags},
	}
	var scratch []byte
	for i := range frames {
		var err error
		if scratch, err = writeFrame(link, scratch, &frames[i]); err != nil {
			return Frame{}, err
		}
	}
	f, err := readWithin(ctx, link, openTimeout)
	if err != nil {
		return Frame{}, err
	}
	switch f.Type {
	case FrameVolumeState:
		return f, nil
	case FrameError:
		return Frame{}, fmt.Errorf("partner: %s: %w", f.Text, errRefused)
	}
	return Frame{}, fmt.Errorf("volume_open answered with %v: %w", f.Type, ErrFrame)
}

// readWithin reads one frame, closing the link if none comes within d: a link has no
// deadlines of its own (an SSH channel).
func readWithin(ctx context.Context, link *linkConn, d time.Duration) (Frame, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { link.Close() })
	defer stop()
	fr := frameReader{r: link}
	f, err := fr.Read()
	if err != nil && ctx.Err() != nil {
		return Frame{}, fmt.Errorf("no answer within %v: %w", d, ctx.Err())
	}
	return f, err
}

// decideSync chooses between a resync of the dirty regions and a full sync: the
// partner's copy is usable only if it descends from this volume's current epoch.
func (v *volume) decideSync(st Frame) (full, fresh bool) {
	epoch, synced := v.epoch()
	if synced && epoch != 0 && st.Epoch == epoch {
		return false, false
	}
	v.newEpoch()
	v.st.fullSyncs.Add(1)
	return true, st.Flags&FlagFresh != 0
}

// send writes rec's frame, tracking it for its ack. It reports false when the stream
// is already dead (the caller fails rec); a write error kills the stream, which fails
// rec with everything else in flight.
//
// rec is in flight (an ack may match it) before its frame is written, and its buffer is
// read while the frame is written: a stream dying meanwhile (the reader's error, a
// delete) must not retire rec, which frees that buffer, under the write. die leaves
// the record being written to send, which fails it afterwards. An ack cannot come
// before the frame has left: by then the write no longer reads the buffer.
func (s *stream) send(rec *record) bool {
	f := Frame{Type: rec.kind, Seq: rec.seq, Offset: rec.off, Flags: rec.flags, Epoch: rec.epoch}
	if rec.kind == FrameWrite {
		f.Data = rec.data()
	}
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return false
	}
	s.inflight[rec.seq] = rec
	s.writing = rec
	s.mu.Unlock()
	var err error
	s.scratch, err = writeFrame(s.w, s.scratch, &f)
	s.mu.Lock()
	s.writing = nil
	orphaned := s.orphaned
	s.orphaned = false
	s.mu.Unlock()
	if orphaned {
		s.v.retire(rec, true)
	}
	if err != nil {
		s.die(err)
		return true
	}
	s.v.st.framesSent.Add(1)
	s.v.st.bytesSent.Add(uint64(len(s.scratch)))
	return true
}

func (s *stream) flush() {
	if err := s.w.Flush(); err != nil {
		s.die(err)
	}
}

// readAcks retires each frame the partner acknowledges, measuring its latency at the
// probe site's own moment.
func (s *stream) readAcks() {
	v := s.v
	fr := frameReader{r: s.link}
	for {
		f, err := fr.Read()
		if err != nil {
			s.die(err)
			return
		}
		switch f.Type {
		case FrameAck:
			s.mu.Lock()
			rec := s.inflight[f.Seq]
			delete(s.inflight, f.Seq)
			s.mu.Unlock()
			if rec == nil {
				s.die(fmt.Errorf("ack of unknown frame %d: %w", f.Seq, ErrFrame))
				return
			}
			now := monoNs()
			probe.ReplAck(v.name, s.partner, f.Seq)
			v.lat.record(now - rec.sentNs)
			v.retire(rec, f.Status != 0)
		case FrameError:
			s.die(fmt.Errorf("partner: %s: %w", f.Text, errRefused))
			return
		default:
			s.die(fmt.Errorf("unexpected %v on the data link: %w", f.Type, ErrFrame))
			return
		}
	}
}

// die ends the stream once: the link closes and every frame in flight fails back.
func (s *stream) die(err error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	if err == nil {
		err = io.EOF
	}
	s.err = err
	recs := make([]*record, 0, len(s.inflight))
	for _, rec := range s.inflight {
		if rec == s.writing {
			s.orphaned = true // send fails it when its write is over
			continue
		}
		recs = append(recs, rec)
	}
	clear(s.inflight)
	s.mu.Unlock()
	s.v.stream.CompareAndSwap(s, nil)
	s.link.Close()
	close(s.died)
	for _, rec := range recs {
		s.v.retire(rec, true)
	}
}

func (s *stream) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead
}

func (s *stream) cause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// resyncLoop copies dirty regions while live writes to clean ones flow, and tells the
// partner when its copy is consistent. It returns when the stream dies or ctx ends.
func (s *stream) resyncLoop(ctx context.Context, full, fresh, force bool) error {
	v := s.v
	inPass := false
	if force {
		if !s.marker(ctx, FrameSyncStart, full, false) {
			return nil
		}
		inPass = true
		v.st.resyncPasses.Add(1)
		v.setState(VolStateSyncing)
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !s.alive() {
			return nil
		}
		if bitAny(v.rg.resync) {
			if !inPass {
				if !s.marker(ctx, FrameSyncStart, full, false) {
					return nil
				}
				inPass = true
				v.st.resyncPasses.Add(1)
				v.setState(VolStateSyncing)
			}
			if err := s.pass(ctx, fresh); err != nil {
				return err
			}
			continue
		}
		if inPass {
			if !s.drainSync(ctx) {
				return nil
			}
			if bitAny(v.rg.resync) {
				continue
			}
			if !s.marker(ctx, FrameSyncDone, false, true) {
				return nil
			}
			inPass, fresh, full = false, false, false
			if _, synced := v.epoch(); !synced {
				v.setSynced()
			}
			v.setState(VolStateReplicating)
			kick(v.cleanWake) // every region just copied is identical now
		}
		v.setState(VolStateReplicating)
		if err := s.followRekey(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-s.died:
		case <-v.resyncWake:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// followRekey sends the new KEK when A's crypt volume was rekeyed during the stream.
func (s *stream) followRekey(ctx context.Context) error {
	if s.enc == nil || !s.v.svc.rekeyed(s.v, s.enc) {
		return nil
	}
	km, err := s.v.svc.encryption(s.v)
	if err != nil || km == nil {
		return fmt.Errorf("keys after a rekey: %v: %w", err, errRefused)
	}
	s.enc.generation = km.generation
	return exchangeKeys(ctx, s.tc, s.p, s.v, km)
}

// pass copies every region marked for resync once.
func (s *stream) pass(ctx context.Context, fresh bool) error {
	v := s.v
	for r := bitNext(v.rg.resync, 0, v.rg.n); r >= 0; r = bitNext(v.rg.resync, r+1, v.rg.n) {
		if ctx.Err() != nil || !s.alive() {
			return nil
		}
		if err := s.syncRegion(ctx, r, fresh); err != nil {
			return err
		}
	}
	return nil
}

// syncRegion copies region r. It marks r syncing and clears its resync bit before it
// waits for the writes in progress on r and reads it: a write that started before sees
// its data read; one that starts after is either shipped after the read's frames (the
// ring keeps the order) or, seeing syncing, not shipped and marks r for resync again.
func (s *stream) syncRegion(ctx context.Context, r int, fresh bool) error {
	v := s.v
	for v.syncBytes.Load() > syncWindowBytes {
		if !s.alive() {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	bitSet(v.rg.syncing, r)
	defer bitClear(v.rg.syncing, r)
	bitClear(v.rg.resync, r)
	for v.rg.local[r].Load() != 0 {
		if !s.alive() {
			bitSet(v.rg.resync, r)
			return nil
		}
		time.Sleep(20 * time.Microsecond)
	}
	off := uint64(r) << v.regionShift
	n := min(uint64(v.regionBytes), v.sizeBytes-off)
	buf := make([]byte, n)
	if err := v.svc.baseIO(ctx, v.base, bdev.IORead, off, buf); err != nil {
		bitSet(v.rg.resync, r)
		return fmt.Errorf("resync read of region %d: %w", r, err)
	}
	if fresh && allZero(buf) {
		return nil // the partner's new copy reads zeros there already
	}
	for c := uint64(0); c < n; c += syncChunkBytes {
		chunk := buf[c:min(n, c+syncChunkBytes)]
		rec := &record{kind: FrameWrite, seq: v.seq.Add(1), off: off + c, heap: chunk,
			flags: FlagSync, r0: int32(r), r1: int32(r)}
		v.rg.pending[r].Add(1)
		v.syncBytes.Add(int64(len(chunk)))
		if !v.push(rec, s.alive) {
			v.retireOwn(&record{failed: true, r0: int32(r), r1: int32(r), heap: chunk})
			return nil
		}
		v.st.resyncBytes.Add(uint64(len(chunk)))
	}
	return nil
}

// drainSync waits until every resync frame was acknowledged.
func (s *stream) drainSync(ctx context.Context) bool {
	for s.v.syncBytes.Load() > 0 {
		if ctx.Err() != nil || !s.alive() {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

// marker sends sync_start or sync_done; with wait, it returns once acknowledged.
func (s *stream) marker(ctx context.Context, kind FrameType, full, wait bool) bool {
	v := s.v
	epoch, _ := v.epoch()
	rec := &record{kind: kind, seq: v.seq.Add(1), epoch: epoch, r0: 0, r1: -1,
		done: make(chan struct{})}
	if full {
		rec.flags = FlagFull
	}
	if !v.push(rec, s.alive) {
		return false
	}
	if !wait {
		return true
	}
	select {
	case <-rec.done:
		return !rec.failed
	case <-s.died:
	case <-ctx.Done():
	}
	return false
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
