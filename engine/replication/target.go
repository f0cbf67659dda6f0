package replication

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/mem"
	"sluice/engine/reactor"
)

// The partner's side (B) of a volume: its copy (a target), written by the frames A
// sends on the volume's data link, in order, with overlapping writes serialized so that
// B's copy ends as A's base did. B never sees plaintext: A's replica layer sits below
// crypt.

const (
	// maxOutstanding bounds the frames handed to B's reactor and not yet acknowledged,
	// so that a slow disk pushes back on the link (and through SSH's window on A)
	// instead of queueing without end.
	maxOutstanding = 1024
	ackRingSize    = 2048
)

// targetState is what B persists of a copy, beside it.
type targetState struct {
	Volume    string `json:"volume"`
	UUID      []byte `json:"uuid,omitempty"`
	SizeBytes uint64 `json:"size_bytes"`
	BlockSize uint32 `json:"block_size"`
	Bdev      string `json:"bdev"`
	File      string `json:"file,omitempty"`
	// Epoch is the full sync the copy descends from; Complete says no pass is under
	// way (the copy is A's volume as of some instant, crash-consistent).
	Epoch    uint64 `json:"epoch"`
	Complete bool   `json:"complete"`
	Fresh    bool   `json:"fresh"` // never written: reads zeros
	// Encrypted copies are opened at promotion with the key A sent.
	Encrypted bool `json:"encrypted"`
	Promoted  bool `json:"promoted"`
}

type target struct {
	p    *Partnership
	name string
	path string // state file; "" in memory

	mu     sync.Mutex
	st     targetState    // +checklocks:mu
	b      *bdev.Bdev     // +checklocks:mu
	claim  bdev.LayerBase // +checklocks:mu; zero once released (promoted)
	active *targetStream  // +checklocks:mu

	writes, bytes, lastSeq atomic.Uint64
}

func (t *target) state() targetState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

// update changes the state and persists it before it returns: B says a copy is
// consistent only once that is on its disk.
func (t *target) update(fn func(*targetState)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(&t.st)
	return t.saveLocked()
}

// +checklocks:t.mu
func (t *target) saveLocked() error {
	if t.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(t.st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(t.path, b, 0o600)
}

func (p *Partnership) targetsDir() string {
	if p.svc.env.DataDir == "" {
		return ""
	}
	return filepath.Join(p.svc.env.DataDir, "replication", "targets", p.name)
}

// fileTarget makes a copy as a sparse file in the partnership's replica directory.
func (s *Service) fileTarget(p *Partnership, name string, size uint64, bs uint32) (*bdev.Bdev, error) {
	if p.replicaDir == "" {
		return nil, fmt.Errorf("partnership %q has no replica directory: %w", p.name, ErrInvalid)
	}
	return bdev.CreateFile(s.bdevs, bdev.FileParams{Name: copyBdevName(p.name, name),
		Filename: filepath.Join(p.replicaDir, name+".img"), SizeBytes: size, BlockSize: bs})
}

func copyBdevName(partnership, volume string) string {
	return "replica-" + partnership + "-" + volume
}

// loadTargets reopens the copies a previous run held, so that A resumes where it was.
func (p *Partnership) loadTargets() error {
	dir := p.targetsDir()
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		var st targetState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("copy state %s: %v: %w", e.Name(), err, ErrInvalid)
		}
		t := &target{p: p, name: st.Volume, path: filepath.Join(dir, e.Name()), st: st}
		if !st.Promoted {
			if err := t.open(); err != nil {
				return err
			}
		}
		p.mu.Lock()
		p.targets[st.Volume] = t
		p.mu.Unlock()
	}
	return nil
}

// open registers the copy's bdev over its file and claims it, so that nothing but
// the replication writes it until it is promoted.
func (t *target) open() error {
	s := t.p.svc
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := s.bdevs.Get(t.st.Bdev)
	if err != nil && t.st.File != "" {
		b, err = bdev.CreateFile(s.bdevs, bdev.FileParams{Name: t.st.Bdev, Filename: t.st.File,
			BlockSize: t.st.BlockSize})
	}
	if err != nil {
		return err
	}
	lb, err := bdev.ClaimBase(s.bdevs, "replication", t.p.name+"/"+t.name, b.Name())
	if err != nil {
		return err
	}
	t.b, t.claim = b, lb
	return nil
}

// openTarget finds or makes the copy f (a volume_open) asks for.
func (p *Partnership) openTarget(f Frame) (*target, error) {
	if !safeName(f.Volume) {
		return nil, fmt.Errorf("volume name %q: %w", f.Volume, ErrInvalid)
	}
	p.mu.Lock()
	t := p.targets[f.Volume]
	p.mu.Unlock()
	if t == nil {
		return p.newTarget(f)
	}
	st := t.state()
	switch {
	case st.Promoted:
		return nil, fmt.Errorf("the copy of %q was promoted on this node", f.Volume)
	case st.SizeBytes != f.Size || st.BlockSize != f.BlockSize:
		return nil, fmt.Errorf("the copy of %q has %d bytes in %d-byte blocks, A says %d in %d",
			f.Volume, st.SizeBytes, st.BlockSize, f.Size, f.BlockSize)
	case len(st.UUID) == 16 && string(st.UUID) != string(f.UUID):
		return nil, fmt.Errorf("the copy of %q is of another volume", f.Volume)
	}
	return t, nil
}

func (p *Partnership) newTarget(f Frame) (*target, error) {
	b, err := p.svc.newTarget(p, f.Volume, f.Size, f.BlockSize)
	if err != nil {
		return nil, err
	}
	t := &target{p: p, name: f.Volume, st: targetState{Volume: f.Volume, UUID: f.UUID,
		SizeBytes: f.Size, BlockSize: f.BlockSize, Bdev: b.Name(), Fresh: true,
		Encrypted: f.Flags&FlagEncrypted != 0}}
	if fp, ok := b.Params().(bdev.FileParams); ok {
		t.st.File = fp.Filename
	}
	if dir := p.targetsDir(); dir != "" {
		t.path = filepath.Join(dir, f.Volume+".json")
	}
	if err := t.open(); err != nil {
		_ = p.svc.bdevs.Delete(context.Background(), b.Name(), "")
		return nil, err
	}
	if err := t.update(func(*targetState) {}); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if other := p.targets[f.Volume]; other != nil {
		t.release(true)
		return other, nil
	}
	p.targets[f.Volume] = t
	return t, nil
}

// release gives the copy's bdev back; with remove it also unregisters it (the file
// stays).
func (t *target) release(remove bool) {
	t.mu.Lock()
	lb, b := t.claim, t.b
	t.claim = bdev.LayerBase{}
	t.mu.Unlock()
	lb.Release()
	if remove && b != nil {
		if err := t.p.svc.bdevs.Delete(context.Background(), b.Name(), ""); err != nil {
			t.p.log.Warn("replication: closing a copy", "bdev", b.Name(), "err", err)
		}
	}
}

// serveData serves a volume's data link: volume_open, then frames until the link ends.
func (p *Partnership) serveData(c *linkConn, fr *frameReader) {
	refuse := func(code uint32, err error) {
		_, _ = writeFrame(c, nil, &Frame{Type: FrameError, Status: code, Text: err.Error()})
	}
	f, err := fr.Read()
	if err != nil {
		return
	}
	if f.Type != FrameVolumeOpen {
		refuse(errnoInvalid, fmt.Errorf("%v before volume_open", f.Type))
		return
	}
	t, err := p.openTarget(f)
	if err != nil {
		refuse(errnoInvalid, err)
		return
	}
	if f.Flags&FlagEncrypted != 0 && !p.hasKey(f.Volume) {
		// R3: an encrypted volume's data waits for its keys.
		refuse(errnoAccess, fmt.Errorf("volume %q is encrypted and its keys were not exchanged", f.Volume))
		return
	}
	ts, err := t.begin(c)
	if err != nil {
		refuse(errnoExists, err)
		return
	}
	defer t.end(ts)
	st := t.state()
	flags := uint32(0)
	if st.Complete {
		flags |= FlagComplete
	}
	if st.Fresh {
		flags |= FlagFresh
	}
	if _, err := writeFrame(c, nil, &Frame{Type: FrameVolumeState, Volume: f.Volume,
		Epoch: st.Epoch, Flags: flags}); err != nil {
		return
	}
	if st.Fresh || (f.Flags&FlagEncrypted != 0) != st.Encrypted {
		if err := t.update(func(s *targetState) {
			s.Fresh = false
			s.Encrypted = f.Flags&FlagEncrypted != 0
		}); err != nil {
			return
		}
	}
	ts.receive(fr)
}

// begin makes ts the copy's only stream: a stream left by a connection A abandoned
// (a partition B has not noticed yet) is closed first.
func (t *target) begin(c *linkConn) (*targetStream, error) {
	s := t.p.svc
	t.mu.Lock()
	old := t.active
	b := t.b
	promoted := t.st.Promoted
	t.mu.Unlock()
	if promoted || b == nil {
		return nil, fmt.Errorf("the copy of %q is not writable here", t.name)
	}
	if old != nil {
		old.link.Close()
		<-old.done
	}
	r := s.env.Control
	ts := &targetStream{t: t, link: c, r: r, core: s.env.Mem(r.ID()),
		acks: reactor.NewMPSC[*applyItem](ackRingSize), ackWake: make(chan struct{}, 1),
		done: make(chan struct{}), recvDone: make(chan struct{})}
	var err error
	if derr := r.Do(func() { ts.ch, err = b.GetChannel(r) }); derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.active = ts
	t.mu.Unlock()
	return ts, nil
}

func (t *target) end(ts *targetStream) {
	t.mu.Lock()
	if t.active == ts {
		t.active = nil
	}
	t.mu.Unlock()
}

// targetStream is one data link's writes into a copy. The queue and in-flight list
// are the apply reactor's; the rest is shared through atomics and the ack ring.
type targetStream struct {
	t    *target
	link *linkConn
	r    *reactor.Reactor
	core *mem.Core
	ch   *bdev.Channel

	acks        *reactor.MPSC[*applyItem]
	ackWake     chan struct{}
	outstanding atomic.Int64
	done        chan struct{} // closed once everything is applied and the channel put
	recvDone    chan struct{}

	queue    []*applyItem // the reactor's: frames waiting their turn
	inflight []*applyItem // the reactor's: submitted to the copy
	running  bool
}

// applyItem is one frame on its way into the copy.
type applyItem struct {
	ts     *targetStream
	f      Frame
	io     bdev.IO
	buf    mem.Buf
	status uint32
}

// receive reads frames and hands them to the apply reactor, in order, until the link
// ends; then it waits for the frames in flight and releases the copy's channel.
func (ts *targetStream) receive(fr *frameReader) {
	go ts.writeAcks()
	for {
		f, err := fr.Read()
		if err != nil || !ts.admit(f) {
			break
		}
		for ts.outstanding.Load() >= maxOutstanding {
			time.Sleep(50 * time.Microsecond)
		}
		it := &applyItem{ts: ts, f: f}
		it.io.Done = it.ioDone
		ts.outstanding.Add(1)
		if err := ts.r.Send(applyMsg, it); err != nil {
			ts.outstanding.Add(-1)
			break
		}
	}
	ts.link.Close()
	close(ts.recvDone)
	for ts.outstanding.Load() > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	_ = ts.r.Do(ts.ch.Put)
	close(ts.done)
}

// admit checks a frame's type and records, before any frame after it is applied, a
// pass's start: from then on the copy is inconsistent until sync_done.
func (ts *targetStream) admit(f Frame) bool {
	switch f.Type {
	case FrameWrite, FrameFlush, FrameSyncDone:
		return true
	case FrameSyncStart:
		err := ts.t.update(func(s *targetState) {
			s.Complete = false
			if f.Flags&FlagFull != 0 {
				s.Epoch = f.Epoch
			}
		})
		return err == nil
	}
	return false
}

func applyMsg(arg any) {
	it := arg.(*applyItem)
	ts := it.ts
	ts.queue = append(ts.queue, it)
	ts.run()
}

// run starts the queued frames in order: a write waits for the writes in flight that
// overlap it (and everything behind it waits too, so that order is kept); flush and
// the sync markers wait for every write in flight.
//
// Preconditions: on ts.r.
func (ts *targetStream) run() {
	if ts.running {
		return // a completion inside Submit: the outer loop goes on
	}
	ts.running = true
	for len(ts.queue) > 0 {
		it := ts.queue[0]
		if it.f.Type == FrameWrite {
			if ts.overlaps(it) {
				break
			}
		} else if len(ts.inflight) > 0 {
			break
		}
		ts.queue[0] = nil
		ts.queue = ts.queue[1:]
		ts.start(it)
	}
	ts.running = false
}

func (ts *targetStream) overlaps(it *applyItem) bool {
	a0, a1 := it.f.Offset, it.f.Offset+uint64(len(it.f.Data))
	for _, o := range ts.inflight {
		b0, b1 := o.f.Offset, o.f.Offset+uint64(len(o.f.Data))
		if a0 < b1 && b0 < a1 {
			return true
		}
	}
	return false
}

func (ts *targetStream) start(it *applyItem) {
	f := &it.f
	switch f.Type {
	case FrameWrite:
		n := len(f.Data)
		buf, err := ts.core.Alloc(max(n, 4096))
		if err != nil {
			ts.complete(it, errnoNoSpace)
			return
		}
		it.buf = buf
		copy(buf.Bytes()[:n], f.Data)
		it.io.Type, it.io.FUA, it.io.Offset, it.io.Length = bdev.IOWrite, f.Flags&FlagFUA != 0, f.Offset, uint64(n)
		it.io.SetBuf(buf.Bytes()[:n], buf)
	case FrameFlush:
		it.io.Type, it.io.Offset, it.io.Length, it.io.Buf = bdev.IOFlush, 0, 0, nil
	default:
		ts.complete(it, 0) // a marker: everything before it is applied
		return
	}
	ts.inflight = append(ts.inflight, it)
	ts.ch.Submit(&it.io)
}

func (it *applyItem) ioDone(*bdev.IO) {
	ts := it.ts
	if !it.buf.IsZero() {
		ts.core.Free(it.buf)
		it.buf = mem.Buf{}
	}
	for i, o := range ts.inflight {
		if o == it {
			last := len(ts.inflight) - 1
			ts.inflight[i] = ts.inflight[last]
			ts.inflight[last] = nil
			ts.inflight = ts.inflight[:last]
			break
		}
	}
	code := uint32(0)
	switch it.io.Status {
	case bdev.StatusSuccess:
		if it.f.Type == FrameWrite {
			ts.t.writes.Add(1)
			ts.t.bytes.Add(uint64(len(it.f.Data)))
		}
	case bdev.StatusOutOfRange:
		code = errnoRange
	case bdev.StatusNoSpace:
		code = errnoNoSpace
	default:
		code = errnoIO
	}
	ts.complete(it, code)
	ts.run()
}

func (ts *targetStream) complete(it *applyItem, code uint32) {
	it.status = code
	it.f.Data = nil
	if !ts.acks.Push(it) {
		panic("replication: ack ring full beyond maxOutstanding")
	}
	kick(ts.ackWake)
}

// writeAcks sends the acks in completion order. A sync_done is acknowledged only once
// the copy's new state (consistent at the epoch) is on disk.
func (ts *targetStream) writeAcks() {
	w := bufio.NewWriterSize(ts.link, 64<<10)
	var scratch []byte
	broken := false
	for {
		it, ok := ts.acks.Pop()
		if !ok {
			if !broken && w.Flush() != nil {
				broken = true
			}
			select {
			case <-ts.ackWake:
				continue
			case <-ts.recvDone:
				if ts.outstanding.Load() == 0 {
					return
				}
				time.Sleep(100 * time.Microsecond)
				continue
			}
		}
		if it.f.Type == FrameSyncDone && it.status == 0 {
			if err := ts.t.update(func(s *targetState) { s.Complete, s.Epoch = true, it.f.Epoch }); err != nil {
				it.status = errnoIO
			}
		}
		ts.t.lastSeq.Store(it.f.Seq)
		if !broken {
			var err error
			if scratch, err = writeFrame(w, scratch, &Frame{Type: FrameAck, Seq: it.f.Seq,
				Status: it.status}); err != nil {
				broken = true
				ts.link.Close()
			}
		}
		ts.outstanding.Add(-1)
	}
}

// CopyStatus is the state of a copy this node holds for a partner.
type CopyStatus struct {
	Volume        string `json:"volume"`
	Bdev          string `json:"bdev"`
	File          string `json:"file,omitempty"`
	SizeBytes     uint64 `json:"size_bytes"`
	Epoch         uint64 `json:"epoch"`
	Complete      bool   `json:"complete"`
	Encrypted     bool   `json:"encrypted"`
	Promoted      bool   `json:"promoted"`
	Connected     bool   `json:"connected"`
	WritesApplied uint64 `json:"writes_applied"`
	BytesApplied  uint64 `json:"bytes_applied"`
	LastSeq       uint64 `json:"last_seq"`
}

func (p *Partnership) targetList() []*target {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*target, 0, len(p.targets))
	for _, t := range p.targets {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (p *Partnership) copies() []CopyStatus {
	var out []CopyStatus
	for _, t := range p.targetList() {
		t.mu.Lock()
		st, active := t.st, t.active != nil
		t.mu.Unlock()
		out = append(out, CopyStatus{Volume: st.Volume, Bdev: st.Bdev, File: st.File,
			SizeBytes: st.SizeBytes, Epoch: st.Epoch, Complete: st.Complete,
			Encrypted: st.Encrypted, Promoted: st.Promoted, Connected: active,
			WritesApplied: t.writes.Load(), BytesApplied: t.bytes.Load(), LastSeq: t.lastSeq.Load()})
	}
	return out
}

func (p *Partnership) copyBytes() uint64 {
	var n uint64
	for _, t := range p.targetList() {
		n += t.state().SizeBytes
	}
	return n
}

// closeTargets ends every copy's stream and unregisters the copies' bdevs (their files
// and states stay, for the partnership made again).
func (p *Partnership) closeTargets() {
	for _, t := range p.targetList() {
		t.mu.Lock()
		ts := t.active
		t.mu.Unlock()
		if ts != nil {
			ts.link.Close()
			<-ts.done
		}
		if !t.state().Promoted {
			t.release(true)
		}
	}
}

var errNotCopy = errors.New("replication: no such copy")

// target finds the copy of volume.
func (p *Partnership) target(volume string) (*target, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.targets[volume]
	if t == nil {
		return nil, fmt.Errorf("partnership %q holds no copy of %q: %w: %w", p.name, volume,
			errNotCopy, ErrNotFound)
	}
	return t, nil
}
