package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/nvmf/host"
	"sluice/engine/proto/nvme"
)

// pattern fills a block with bytes derived from its LBA and a generation, so that a
// stale or misplaced block is told apart from the right one.
func pattern(b []byte, lba uint64, gen uint32) {
	for i := 0; i < len(b); i += 16 {
		binary.LittleEndian.PutUint64(b[i:], lba)
		binary.LittleEndian.PutUint32(b[i+8:], gen)
		binary.LittleEndian.PutUint32(b[i+12:], uint32(i))
	}
}

func connectIO(t *testing.T, d *daemon) (*host.Controller, *host.IOQueue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", d.nvmfPort), defaultNQN, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		ctrl.Close()
		t.Fatal(err)
	}
	return ctrl, q
}

// TestAcknowledgedWritesSurviveKill9 writes through NVMe/TCP to the file bdev from
// several queues, kills the daemon with SIGKILL while writes are in flight, restarts
// it on the same data, and reads back every block whose write was acknowledged.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	d := newDaemon(t)
	const writers, perWriter, blocks = 4, 400, 8 // 8 x 512 B = 4 KiB per write
	var mu sync.Mutex
	acked := map[uint64]uint32{}     // lba → generation acknowledged last
	submitted := map[uint64]uint32{} // lba → generation sent last (maybe not acknowledged)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		ctrl, q := connectIO(t, d)
		defer ctrl.Close()
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, blocks*512)
			for i := 0; i < perWriter; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each writer owns its LBAs; rewrites bump the generation.
				lba := uint64(w*1_000_000 + (i%100)*blocks)
				gen := uint32(i/100 + 1)
				pattern(buf, lba, gen)
				mu.Lock()
				submitted[lba] = gen
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := q.Write(ctx, 1, lba, blocks, buf, false)
				cancel()
				if err != nil {
					return // the daemon died under us: expected
				}
				mu.Lock()
				acked[lba] = gen
				mu.Unlock()
			}
		}(w)
	}
	// Let writes flow, then pull the plug mid-stream.
	waitFor(t, "some acknowledged writes", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 150
	})
	d.kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	t.Logf("%d blocks acknowledged before kill -9", len(acked))
	mu.Unlock()

	d.start()
	ctrl, q := connectIO(t, d)
	defer ctrl.Close()
	want := make([]byte, blocks*512)
	got := make([]byte, blocks*512)
	for lba, gen := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := q.Read(ctx, 1, lba, blocks, got)
		cancel()
		if err != nil {
			t.Fatalf("read lba %d after restart: %v", lba, err)
		}
		// Each sector must hold the acknowledged generation, or the one written
		// after it that was in flight at the kill (it may or may not have landed,
		// sector by sector). An older generation means an acknowledged write was
		// lost.
		for sec := 0; sec < blocks; sec++ {
			b := got[sec*512 : (sec+1)*512]
			g := binary.LittleEndian.Uint32(b[8:])
			if g < gen || g > submitted[lba] {
				t.Fatalf("lba %d sector %d: generation %d, acknowledged %d, last sent %d", lba, sec, g, gen, submitted[lba])
			}
			pattern(want, lba, g)
			if !bytes.Equal(b, want[sec*512:(sec+1)*512]) {
				t.Fatalf("lba %d sector %d: corrupt contents for generation %d", lba, sec, g)
			}
		}
	}
}

// TestFlushAndFUAIssueFdatasync checks, through NVMe/TCP, that FLUSH and FUA writes
// reach the disk: each issues fdatasync on the file bdev, counted by bdev_get_iostat.
func TestFlushAndFUAIssueFdatasync(t *testing.T) {
	d := newDaemon(t)
	ctrl, q := connectIO(t, d)
	defer ctrl.Close()
	syncs := func() uint64 {
		var res bdev.IOStatResult
		d.call("bdev_get_iostat", map[string]string{"name": "vol0"}, &res)
		return res.Bdevs[0].NumSyncOps
	}
	ctx := context.Background()
	buf := make([]byte, 4096)
	s0 := syncs()
	for i := 0; i < 5; i++ {
		if err := q.Write(ctx, 1, uint64(i*8), 8, buf, false); err != nil {
			t.Fatal(err)
		}
	}
	if s := syncs(); s != s0 {
		t.Fatalf("plain writes issued %d fdatasyncs", s-s0)
	}
	for i := 0; i < 5; i++ {
		if err := q.Write(ctx, 1, uint64(i*8), 8, buf, true); err != nil {
			t.Fatal(err)
		}
	}
	s1 := syncs()
	if s1-s0 != 5 {
		t.Fatalf("5 FUA writes issued %d fdatasyncs, want 5", s1-s0)
	}
	if err := q.FlushCache(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if s := syncs(); s != s1+1 {
		t.Fatalf("FLUSH issued %d fdatasyncs, want 1", s-s1)
	}
	// The data moved between the allocator's buffers and the file through io_uring
	// fixed buffers, without a fallback.
	var res bdev.IOStatResult
	d.call("bdev_get_iostat", map[string]string{"name": "vol0"}, &res)
	if st := res.Bdevs[0]; st.NumFixedBufferOps < 10 || st.NumFixedBufferFaults != 0 {
		t.Fatalf("fixed-buffer I/Os %d (faults %d), want >= 10 and 0", st.NumFixedBufferOps, st.NumFixedBufferFaults)
	}
}

// TestNoSpaceIsCapacityExceeded: a file bdev whose file system fills up answers
// writes with Capacity Exceeded (what nvmet gives for ENOSPC), not a generic error,
// and keeps serving reads and the writes that fit.
func TestNoSpaceIsCapacityExceeded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	d := newDaemon(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	const nqn = "nqn.2026-11.dev.sluice:full"
	var name string
	var ok bool
	d.call("bdev_file_create", map[string]any{"name": "small", "filename": mnt + "/small.img",
		"size_bytes": 64 << 20, "block_size": 4096}, &name)
	d.call("nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, &ok)
	var nsid uint32
	d.call("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "small"}}, &nsid)
	port := freePort(t)
	d.call("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{
		"traddr": "127.0.0.1", "trsvcid": fmt.Sprint(port)}}, &ok)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctrl, err := host.Connect(ctx, fmt.Sprintf("127.0.0.1:%d", port), nqn, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	q, err := ctrl.NewIOQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{0x5A}, 64<<10)
	var full error
	written := 0
	for lba := uint64(0); lba < (64<<20)/4096; lba += 16 {
		if err := q.Write(ctx, 1, lba, 16, buf, false); err != nil {
			full = err
			break
		}
		written++
	}
	if !host.IsStatus(full, nvme.StatusCapacityExceeded) {
		t.Fatalf("after %d writes of 64 KiB into a 2 MiB file system: %v, want Capacity Exceeded", written, full)
	}
	got := make([]byte, 64<<10)
	if err := q.Read(ctx, 1, 0, 16, got); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("reading back what fitted: %v", err)
	}
}
