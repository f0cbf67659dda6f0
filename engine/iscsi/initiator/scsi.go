package initiator

import (
	"context"
	"encoding/binary"

	pscsi "sluice/engine/proto/scsi"
)

// The synchronous SCSI helpers: each runs one command and turns a status other than
// GOOD into a *StatusError.

// Read16 reads blocks blocks at lba of lun into buf with READ(16); len(buf) is the
// Expected Data Transfer Length.
func (s *Session) Read16(ctx context.Context, lun uint16, lba uint64, blocks uint32, buf []byte) error {
	if blocks == 0 || len(buf) == 0 {
		return ErrBadLength
	}
	c := Command{LUN: lun, CDB: cdb16(0x88, lba, blocks, false), Read: true, Data: buf}
	return s.run(ctx, "READ(16)", &c)
}

// Write16 writes blocks blocks from buf at lba of lun with WRITE(16); fua sets Force
// Unit Access, which makes the write durable before it is acknowledged.
func (s *Session) Write16(ctx context.Context, lun uint16, lba uint64, blocks uint32, buf []byte,
	fua bool) error {
	if blocks == 0 || len(buf) == 0 {
		return ErrBadLength
	}
	c := Command{LUN: lun, CDB: cdb16(0x8a, lba, blocks, fua), Write: true, Data: buf}
	return s.run(ctx, "WRITE(16)", &c)
}

// SynchronizeCache makes every write lun acknowledged so far durable (SYNCHRONIZE
// CACHE(10) over the whole LU, SBC-4 §5.31).
func (s *Session) SynchronizeCache(ctx context.Context, lun uint16) error {
	c := Command{LUN: lun, CDB: [16]byte{0: byte(pscsi.OpSynchronizeCache10)}}
	return s.run(ctx, "SYNCHRONIZE CACHE(10)", &c)
}

// TestUnitReady sends TEST UNIT READY.
func (s *Session) TestUnitReady(ctx context.Context, lun uint16) error {
	c := Command{LUN: lun}
	return s.run(ctx, "TEST UNIT READY", &c)
}

// ClearUnitAttention sends TEST UNIT READY until it is GOOD, consuming the unit
// attentions a new I_T nexus (29h/00h, POWER ON) or a reset reports (at most 8).
func (s *Session) ClearUnitAttention(ctx context.Context, lun uint16) error {
	var err error
	for range 8 {
		if err = s.TestUnitReady(ctx, lun); err == nil || !IsSense(err, pscsi.SenseKeyUnitAttention) {
			return err
		}
	}
	return err
}

// ReadCapacity16 returns the LU's block count and block size (READ CAPACITY(16),
// SBC-4 §5.20).
func (s *Session) ReadCapacity16(ctx context.Context, lun uint16) (blocks uint64, blockSize uint32,
	err error) {
	var buf [32]byte
	c := Command{LUN: lun, Read: true, Data: buf[:]}
	c.CDB[0], c.CDB[1] = 0x9e, 0x10
	binary.BigEndian.PutUint32(c.CDB[10:], uint32(len(buf)))
	if err := s.run(ctx, "READ CAPACITY(16)", &c); err != nil {
		return 0, 0, err
	}
	return binary.BigEndian.Uint64(buf[0:]) + 1, binary.BigEndian.Uint32(buf[8:]), nil
}

// run executes a command and fails it unless GOOD.
func (s *Session) run(ctx context.Context, op string, c *Command) error {
	r, err := s.Exec(ctx, c)
	if err != nil {
		return err
	}
	if !r.Good() {
		return &StatusError{Op: op, Response: r.Response, Status: r.Status, Sense: r.Sense,
			HasSense: r.SenseLen > 0}
	}
	return nil
}
