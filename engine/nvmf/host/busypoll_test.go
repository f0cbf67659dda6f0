package host

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"sluice/engine/proto/nvme"
)

// TestBusyPollZeroAlloc: once a queue busy-polls, submitting, flushing, reaping and
// polling allocate nothing per I/O, reads land in the caller's buffers, and writes go
// in-capsule or through R2T.
func TestBusyPollZeroAlloc(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  fakeCfg
		opts Options
		poll bool
	}{
		{"icd reap", fakeCfg{ioccsz: (64 + 8192) / 16}, Options{}, false},
		{"icd poll", fakeCfg{ioccsz: (64 + 8192) / 16}, Options{}, true},
		{"r2t digests success poll", fakeCfg{maxH2C: 4096, success: true},
			Options{MaxICD: -1, HeaderDigest: true, DataDigest: true, DisableSQFlow: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tc.cfg.benchIO = true
			f := newFakeTarget(t, tc.cfg)
			tc.opts.QueueSize = 64
			c := connectFake(t, f, tc.opts)
			q, err := c.NewIOQueue(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := q.BusyPoll(); err != nil {
				t.Fatal(err)
			}
			const depth = 32
			bufs := make([][]byte, depth)
			for i := range bufs {
				bufs[i] = make([]byte, 8192)
			}
			big := make([]byte, 64<<10)
			dst := make([]Completion, depth)
			run := func() {
				for i := range depth {
					var err error
					if i%2 == 0 {
						err = q.SubmitRead(1, uint64(i), 16, bufs[i], uint16(i))
					} else {
						err = q.SubmitWrite(1, uint64(i), 16, bufs[i], false, uint16(i))
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := q.SubmitRead(1, 0, 128, big, depth); err != nil {
					t.Fatal(err)
				}
				for q.Outstanding() > 0 {
					var n int
					var err error
					if tc.poll {
						n, err = q.Poll(dst)
					} else {
						n, err = q.Reap(dst)
					}
					if err != nil {
						t.Fatal(err)
					}
					for _, cpl := range dst[:n] {
						if !cpl.Status.Success() {
							t.Fatalf("completion %+v", cpl)
						}
					}
				}
			}
			if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
				t.Errorf("%v allocations per %d I/Os, want 0", allocs, depth+1)
			}
			if k := 1001; big[k] != byte(k) || bufs[0][k] != byte(k) {
				t.Errorf("read data not delivered")
			}
		})
	}
}

// TestBusyPollSync: the synchronous helpers still work on a busy-polling queue, and
// Poll refuses a queue that does not busy-poll.
func TestBusyPollSync(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{})
	c := connectFake(t, f, Options{})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Poll(make([]Completion, 1)); !errors.Is(err, ErrNotBusyPolling) {
		t.Fatalf("Poll before BusyPoll: %v, want ErrNotBusyPolling", err)
	}
	if err := q.BusyPoll(); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("sluice!!"), 2*fakeBlock/8)
	if err := q.Write(ctxT(t), 1, 4, 2, want, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if err := q.Read(ctxT(t), 1, 4, 2, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written")
	}
}

// TestBusyPollTimeout: a spinning Reap still gives up after the controller timeout.
func TestBusyPollTimeout(t *testing.T) {
	f := newFakeTarget(t, fakeCfg{hook: func(fc *fakeConn, sqe *nvme.SQE, data []byte) bool {
		return fc.qid != 0 && sqe.Opcode() == uint8(nvme.NVMRead) // swallow reads
	}})
	c := connectFake(t, f, Options{Timeout: 200 * time.Millisecond})
	q, err := c.NewIOQueue(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.BusyPoll(); err != nil {
		t.Fatal(err)
	}
	if err := q.SubmitRead(1, 0, 1, make([]byte, fakeBlock), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Reap(make([]Completion, 1)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Reap: %v, want ErrTimeout", err)
	}
}
