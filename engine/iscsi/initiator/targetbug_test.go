package initiator_test

import (
	"errors"
	"testing"

	"sluice/engine/iscsi"
	"sluice/engine/iscsi/initiator"
	proto "sluice/engine/proto/iscsi"
)

// Task management against reads whose Data-In is still going out. RFC 7143 §11.5.1:
// "The iSCSI target MUST ensure that no responses for the tasks covered by a task
// management function are delivered to the iSCSI initiator after the Task Management
// response except for a task covered by a TASK REASSIGN."
//
// These tests found a target bug, now fixed: a read whose status was known but whose
// Data-In was still going out in batches was passed over by task management, so ABORT
// TASK answered "task does not exist" and LOGICAL UNIT RESET "function complete" ahead
// of the read's remaining Data-In and status. The target now holds the TMF Response
// until such a task's last PDU has gone. With a 1 MiB read in 4 KiB segments (256
// Data-In PDUs) the bug showed on almost every try.

// tmfDuringDataIn submits reads of 1 MiB that come back in 4 KiB Data-In PDUs, sends
// the task management function right after them, then checks that nothing arrives for
// the reads after its response.
func tmfDuringDataIn(t *testing.T, reads int, tmf func(s *initiator.Session) error) {
	e := newEnv(t, envOpts{opts: iscsi.Options{MaxBurstLength: 1 << 20}})
	s := e.connect(initiator.Options{MaxRecvDataSegmentLength: 4096, MaxBurstLength: 1 << 20, QueueDepth: reads})
	bufs := make([][]byte, reads)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<20)
	}
	cs := make([]initiator.Completion, reads)
	for round := range 20 {
		for tag := range reads {
			if err := s.SubmitRead(0, 0, 2048, bufs[tag], uint16(tag)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := tmf(s); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		aborted := 0
		for got := 0; got < reads; {
			n, err := s.Reap(cs)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			for _, c := range cs[:n] {
				if errors.Is(c.Err, initiator.ErrAborted) {
					aborted++
				} else if c.Err != nil || !c.Good() {
					t.Fatalf("round %d: read %d: %v %+v", round, c.Tag, c.Err, c.Result)
				}
			}
			got += n
		}
		// Whatever the target still had queued for the reads arrives before this
		// ping's answer.
		if err := s.Ping(ctx(t), nil); err != nil {
			t.Fatalf("round %d (%d of %d reads ended by the TMF Response): after the TMF Response: %v",
				round, aborted, reads, err)
		}
		if err := s.ClearUnitAttention(ctx(t), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAbortTaskDuringDataIn: ABORT TASK of a read whose Data-In is being sent.
func TestAbortTaskDuringDataIn(t *testing.T) {
	tmfDuringDataIn(t, 1, func(s *initiator.Session) error {
		code, err := s.AbortTask(ctx(t), 0)
		if err == nil && code != proto.TMFComplete && code != proto.TMFTaskNotExist {
			t.Fatalf("ABORT TASK: %v", code)
		}
		return err
	})
}

// TestLUNResetDuringDataIn: LOGICAL UNIT RESET with eight reads whose Data-In is being
// sent.
func TestLUNResetDuringDataIn(t *testing.T) {
	tmfDuringDataIn(t, 8, func(s *initiator.Session) error { return s.LUNReset(ctx(t), 0) })
}
