package bdev

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// delayOver makes a null or malloc base and a delay bdev over it, completions held for
// polls poller runs.
func delayOver(t *testing.T, m *Manager, module string, polls uint32, reorder bool) *Bdev {
	t.Helper()
	var err error
	switch module {
	case "null":
		_, err = CreateNull(m, NullParams{Name: "base", NumBlocks: 1024, BlockSize: 512})
	case "malloc":
		_, err = CreateMalloc(m, MallocParams{Name: "base", NumBlocks: 1024, BlockSize: 512}, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := CreateDelay(m, DelayParams{Name: "slow", BaseBdevName: "base", DelayPolls: polls, Reorder: reorder})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPutWithIOInFlightDefersRelease: the last Put while writes are in flight is not a
// panic; the completions still arrive, and the backend channel closes only after the
// last one, in a reactor step of its own.
func TestPutWithIOInFlightDefersRelease(t *testing.T) {
	m := NewManager()
	b := delayOver(t, m, "malloc", 5, false)
	r := testReactor(t)
	ch, err := b.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	ios := make([]IO, n)
	done := 0
	buf := bytes.Repeat([]byte{7}, 512)
	for i := range ios {
		ios[i] = IO{Type: IOWrite, Offset: uint64(i) * 512, Length: 512, Buf: buf, Done: func(*IO) { done++ }}
		ch.Submit(&ios[i])
	}
	ch.Put()
	if b.OpenChannels() != 1 {
		t.Fatalf("%d open channels right after Put with I/O in flight, want 1", b.OpenChannels())
	}
	for i := 0; i < 20 && done < n; i++ {
		r.PollOnce()
	}
	if done != n {
		t.Fatalf("%d of %d completions arrived after the Put", done, n)
	}
	r.PollOnce()
	if b.OpenChannels() != 0 || b.base.OpenChannels() != 0 {
		t.Fatalf("channels still open after the last completion: layer %d base %d", b.OpenChannels(), b.base.OpenChannels())
	}
	for i := range ios {
		if ios[i].Status != StatusSuccess {
			t.Fatalf("write %d: %v", i, ios[i].Status)
		}
	}
	if err := m.Delete(context.Background(), "slow", "delay"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(context.Background(), "base", ""); err != nil {
		t.Fatal(err)
	}
}

// TestReleasingChannelIsTakenBack: a user that opens the bdev again while the last
// one's I/O drains gets the same channel, which then stays open.
func TestReleasingChannelIsTakenBack(t *testing.T) {
	m := NewManager()
	b := delayOver(t, m, "null", 3, false)
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	io := &IO{Type: IORead, Length: 512, Buf: make([]byte, 512), Done: func(*IO) {}}
	ch.Submit(io)
	ch.Put()
	ch2, err := b.GetChannel(r)
	if err != nil || ch2 != ch {
		t.Fatalf("GetChannel while releasing: %v, same channel %v", err, ch2 == ch)
	}
	for i := 0; i < 10; i++ {
		r.PollOnce()
	}
	if b.OpenChannels() != 1 {
		t.Fatalf("the channel taken back was closed: %d open", b.OpenChannels())
	}
	if s := submitWait(t, r, ch2, &IO{Type: IORead, Length: 512, Buf: make([]byte, 512)}); s != StatusSuccess {
		t.Fatalf("I/O on the channel taken back: %v", s)
	}
	ch2.Put()
	r.PollOnce()
	if b.OpenChannels() != 0 {
		t.Fatal("channel not closed after the last Put")
	}
}

// TestDeleteWaitsForDrainingChannels: a delete issued while released channels still
// drain waits for them; one that gives up leaves the bdev listed and usable.
func TestDeleteWaitsForDrainingChannels(t *testing.T) {
	m := NewManager()
	b := delayOver(t, m, "null", 1000, false)
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	ch.Submit(&IO{Type: IOWrite, Length: 512, Buf: make([]byte, 512), Done: func(*IO) {}})
	ch.Put()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Delete(ctx, "slow", "delay"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("delete with I/O that never drains: %v, want busy", err)
	}
	if _, err := m.Get("slow"); err != nil {
		t.Fatalf("a failed delete removed the bdev: %v", err)
	}
	if _, err := b.GetChannel(r); err != nil {
		t.Fatalf("a failed delete left the bdev unusable: %v", err)
	}
	b.channels[r].refs-- // the test's GetChannel above: give it back without a Put
	b.channels[r].releasing = true

	errc := make(chan error, 1)
	go func() { errc <- m.Delete(context.Background(), "slow", "delay") }()
	for {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Get("slow"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted bdev still listed: %v", err)
			}
			if b.base.ClaimedBy() != "" {
				t.Fatalf("base still claimed by %q after its layer was deleted", b.base.ClaimedBy())
			}
			return
		default:
			r.PollOnce()
		}
	}
}

// TestFilePutFromCompletion is the crash the hardening issue found: the last user of a
// file bdev channel lets go from inside a completion, which runs inside the channel's
// io_uring reap loop. The ring must not be closed under the loop, nor reaped after.
func TestFilePutFromCompletion(t *testing.T) {
	skipWithoutUring(t)
	m := NewManager()
	b, err := CreateFile(m, FileParams{Name: "f", Filename: filepath.Join(diskTempDir(t), "vol"), SizeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r := testReactor(t)
	ch, err := b.GetChannel(r)
	if err != nil {
		t.Fatal(err)
	}
	buf := offHeap(t, 64*4096)
	const n = 64
	ios := make([]IO, n)
	left := n
	for i := range ios {
		ios[i] = IO{Type: IOWrite, FUA: i%4 == 0, Offset: uint64(i) * 4096, Length: 4096,
			Buf: buf[i*4096 : (i+1)*4096], Done: func(*IO) {
				left--
				if left == n/2 {
					ch.Put() // half the writes still in flight
				}
			}}
		ch.Submit(&ios[i])
	}
	for i := 0; left > 0; i++ {
		if i > 1e6 {
			t.Fatalf("%d writes never completed", left)
		}
		r.PollOnce()
	}
	for i := 0; i < 10; i++ {
		r.PollOnce()
	}
	if b.OpenChannels() != 0 {
		t.Fatal("file channel still open after its last I/O")
	}
	if err := m.Delete(context.Background(), "f", "file"); err != nil {
		t.Fatal(err)
	}
}

// TestDelayReorders: with reorder, I/Os due together complete newest first.
func TestDelayReorders(t *testing.T) {
	m := NewManager()
	b := delayOver(t, m, "null", 2, true)
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	defer func() { ch.Put(); r.PollOnce() }()
	var order []int
	ios := make([]IO, 4)
	for i := range ios {
		ios[i] = IO{Type: IORead, Offset: uint64(i) * 512, Length: 512, Buf: make([]byte, 512),
			Done: func(*IO) { order = append(order, i) }}
		ch.Submit(&ios[i])
	}
	for i := 0; i < 5; i++ {
		r.PollOnce()
	}
	if len(order) != 4 || order[0] != 3 || order[3] != 0 {
		t.Fatalf("completion order %v, want newest first", order)
	}
}

// TestDelayLatency: a microsecond latency holds completions at least that long.
func TestDelayLatency(t *testing.T) {
	m := NewManager()
	if _, err := CreateNull(m, NullParams{Name: "base", NumBlocks: 64, BlockSize: 512}); err != nil {
		t.Fatal(err)
	}
	b, err := CreateDelay(m, DelayParams{Name: "d", BaseBdevName: "base", AvgWriteLatency: 2000, P99WriteLatency: 2000})
	if err != nil {
		t.Fatal(err)
	}
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	defer func() { ch.Put(); r.PollOnce() }()
	// The reactor's clock is read once per step: step once so that it is not older
	// than the start of the measurement.
	start := time.Now()
	r.PollOnce()
	if s := submitWait(t, r, ch, &IO{Type: IOWrite, Length: 512, Buf: make([]byte, 512)}); s != StatusSuccess {
		t.Fatal(s)
	}
	if el := time.Since(start); el < 2*time.Millisecond {
		t.Fatalf("2 ms write latency completed after %v", el)
	}
	if _, err := CreateDelay(m, DelayParams{Name: "d2", BaseBdevName: "base"}); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second layer over a claimed base: %v", err)
	}
	if err := m.Delete(context.Background(), "base", ""); !errors.Is(err, ErrClaimed) {
		t.Fatalf("deleting the base under a layer: %v", err)
	}
}

func TestErrorInjection(t *testing.T) {
	m := NewManager()
	if _, err := CreateMalloc(m, MallocParams{Name: "m", NumBlocks: 64, BlockSize: 512}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := CreateError(m, ErrorParams{BaseName: "m"})
	if err != nil || b.Name() != "EE_m" {
		t.Fatalf("create: %v %v", b, err)
	}
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	defer func() { ch.Put(); r.PollOnce() }()
	data := bytes.Repeat([]byte{0x11}, 512)
	if err := InjectError(m, InjectParams{Name: "EE_m", IOType: "write", ErrorType: "failure", Num: 2}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []Status{StatusIOError, StatusIOError, StatusSuccess} {
		if s := submitWait(t, r, ch, &IO{Type: IOWrite, Length: 512, Buf: data}); s != want {
			t.Fatalf("write %d: %v, want %v", i, s, want)
		}
	}
	if err := InjectError(m, InjectParams{Name: "EE_m", IOType: "read", ErrorType: "nomem", Num: 1}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	if s := submitWait(t, r, ch, &IO{Type: IORead, Length: 512, Buf: got}); s != StatusNoMemory {
		t.Fatalf("read with nomem armed: %v", s)
	}
	if err := InjectError(m, InjectParams{Name: "EE_m", IOType: "read", ErrorType: "corrupt_data", Num: 1,
		CorruptOffset: 7, CorruptValue: 0xEE}); err != nil {
		t.Fatal(err)
	}
	if s := submitWait(t, r, ch, &IO{Type: IORead, Length: 512, Buf: got}); s != StatusSuccess || got[7] != 0xEE || got[6] != 0x11 {
		t.Fatalf("corrupt read: %v %x", s, got[:8])
	}
	for _, bad := range []InjectParams{
		{Name: "EE_m", IOType: "reed", ErrorType: "failure", Num: 1},
		{Name: "EE_m", IOType: "read", ErrorType: "fire", Num: 1},
		{Name: "m", IOType: "read", ErrorType: "failure", Num: 1},
	} {
		if err := InjectError(m, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}

// TestLayerAllocatesNothing: once its pool is warm, a layer adds no allocation per I/O.
func TestLayerAllocatesNothing(t *testing.T) {
	m := NewManager()
	delayOver(t, m, "null", 0, false)
	e, err := CreateError(m, ErrorParams{BaseName: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	r := testReactor(t)
	ch, _ := e.GetChannel(r)
	defer func() { ch.Put(); r.PollOnce() }()
	buf := make([]byte, 512)
	done := false
	io := &IO{Type: IOWrite, Length: 512, Buf: buf, Done: func(*IO) { done = true }}
	run := func() {
		done = false
		ch.Submit(io)
		for !done {
			r.PollOnce()
		}
	}
	run()
	if n := testing.AllocsPerRun(500, run); n != 0 {
		t.Fatalf("error over delay over null allocates %v per I/O", n)
	}
}

// TestClaimKinds: one volume may be exported once over NVMe and once over SCSI (they
// share its identity and reservations), never twice over one protocol, and never
// beside a layer that writes it on its own.
func TestClaimKinds(t *testing.T) {
	m := NewManager()
	b, err := CreateNull(m, NullParams{Name: "v", NumBlocks: 64, BlockSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ClaimNVMeExport, "nvmf a ns 1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ClaimSCSIExport, "iscsi t lun 0"); err != nil {
		t.Fatalf("SCSI export beside the NVMe one: %v", err)
	}
	if err := b.Claim(ClaimNVMeExport, "nvmf b ns 1"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second NVMe export: %v", err)
	}
	if _, err := CreateDelay(m, DelayParams{Name: "d", BaseBdevName: "v"}); !errors.Is(err, ErrClaimed) {
		t.Fatalf("a layer over an exported volume: %v", err)
	}
	b.Release("nvmf a ns 1")
	b.Release("iscsi t lun 0")
	if _, err := CreateDelay(m, DelayParams{Name: "d", BaseBdevName: "v"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ClaimSCSIExport, "iscsi t lun 0"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("export of a layered volume: %v", err)
	}
}

// TestLatencyIsMeasured: even I/Os that complete inline (null) get a latency, timed on
// a sample of them with the monotonic clock, never a pretend zero.
func TestLatencyIsMeasured(t *testing.T) {
	m := NewManager()
	b, _ := CreateNull(m, NullParams{Name: "n", NumBlocks: 64, BlockSize: 512})
	r := testReactor(t)
	ch, _ := b.GetChannel(r)
	defer func() { ch.Put(); r.PollOnce() }()
	for i := 0; i < 2*latencySampleEvery; i++ {
		submitWait(t, r, ch, &IO{Type: IORead, Length: 512, Buf: make([]byte, 512)})
	}
	st := b.IOStat()
	if st.ReadLatencySamples != 2 || st.ReadLatencyNs == 0 {
		t.Fatalf("read latency %d ns over %d samples, want 2 samples and a nonzero sum", st.ReadLatencyNs, st.ReadLatencySamples)
	}
}
