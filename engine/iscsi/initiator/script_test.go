package initiator

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// The in-package tests play the target with scripted bytes: a session is put in full
// feature phase over scriptConn without a login, with commands in flight whose tags
// the script names.

// scriptConn feeds a byte stream as the target's side of the connection and records
// what the initiator writes.
type scriptConn struct {
	net.Conn // nil: methods not overridden are never called
	r        io.Reader
	w        bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// Script constants: the window and StatSN the session starts from, and the commands
// in flight.
const (
	scriptStatSN = 100
	scriptMaxCmd = 40
	readITT      = 0x10000 // tag 0: READ of 32 KiB
	writeITT     = 0x10001 // tag 1: WRITE of 8 KiB, all of it through R2T
	readLen      = 32768
	writeLen     = 8192
	scriptMBL    = 16384
)

// scriptSession returns a session in full feature phase reading stream, with a read
// (tag 0, CmdSN 1) and a write (tag 1, CmdSN 2) sent, and a ping (data "ping") in
// flight under control ITT 0x80000001.
func scriptSession(stream []byte, hd, dd bool) (*Session, *scriptConn) {
	c := &scriptConn{r: bytes.NewReader(stream)}
	o := Options{TargetName: "iqn.2026-11.dev.sluice:script", QueueDepth: 4, Timeout: time.Second}
	o, _ = o.withDefaults(false)
	o.MaxRecvDataSegmentLength = 65536
	s := newSession(c, o, false)
	s.br = bufio.NewReaderSize(c, 16<<10) // smaller than a session's: cheaper to fuzz
	p := rfcParams()
	p.HeaderDigest, p.DataDigest = hd, dd
	p.MaxRecvDataSegmentLength, p.MaxXmitDataSegmentLength = 65536, 65536
	p.ImmediateData, p.MaxBurstLength, p.FirstBurstLength = false, scriptMBL, scriptMBL
	s.params = p
	s.enterFullFeature()
	s.cmdSN, s.expCmdSN, s.maxCmdSN, s.expStatSN = 1, 1, scriptMaxCmd, scriptStatSN
	if err := s.SubmitRead(0, 0, readLen/512, make([]byte, readLen), 0); err != nil {
		panic(err)
	}
	if err := s.SubmitWrite(0, 0, 16, make([]byte, writeLen), false, 1); err != nil {
		panic(err)
	}
	if err := s.flush(); err != nil {
		panic(err)
	}
	s.ctlSeq = 0
	s.ctl = ctlReq{active: true, op: proto.OpNOPIn, itt: s.nextCtlITT(), ping: []byte("ping")}
	c.w.Reset()
	return s, c
}

// steps steps the session until it fails or n PDUs were handled.
func (s *Session) steps(n int) error {
	for range n {
		if err := s.step(); err != nil {
			return err
		}
	}
	return nil
}

// tpdu frames a target PDU: header, header digest, data, padding, data digest.
func tpdu(b *proto.BHS, data []byte, hd, dd bool) []byte {
	out := append([]byte(nil), b[:]...)
	if hd {
		out = binary.LittleEndian.AppendUint32(out, proto.HeaderDigest(b, nil))
	}
	if len(data) == 0 {
		return out
	}
	out = append(out, data...)
	out = append(out, make([]byte, proto.PadLen(uint32(len(data))))...)
	if dd {
		out = binary.LittleEndian.AppendUint32(out, proto.DataDigest(data))
	}
	return out
}

// Builders of the valid script; each case changes one of them.

func dataIn(itt, dataSN, off uint32, n int, final bool) proto.DataIn {
	return proto.DataIn{Final: final, DataSegmentLength: uint32(n), ITT: itt, TTT: proto.ReservedTag,
		ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd, DataSN: dataSN, BufferOffset: off}
}

func withStatus(d proto.DataIn, statSN uint32) proto.DataIn {
	d.HasStatus, d.Final, d.StatSN = true, true, statSN
	return d
}

func r2t(sn, off, n uint32) proto.R2T {
	return proto.R2T{ITT: writeITT, TTT: 7 + sn, StatSN: scriptStatSN + 1, ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd,
		R2TSN: sn, BufferOffset: off, DesiredDataTransferLength: n}
}

func response(itt, statSN uint32) proto.SCSIResponse {
	return proto.SCSIResponse{Response: proto.ResponseCompleted, ITT: itt, StatSN: statSN, ExpCmdSN: 3,
		MaxCmdSN: scriptMaxCmd}
}

func put(p interface{ Put(*proto.BHS) }, data []byte, hd, dd bool) []byte {
	var b proto.BHS
	p.Put(&b)
	return tpdu(&b, data, hd, dd)
}

// validScript completes both commands and the ping: the read in two Data-In sequences
// of MaxBurstLength with the status in the last PDU, the write through two R2Ts then a SCSI Response, the ping's
// echo; a target ping in the middle.
func validScript(hd, dd bool) []byte {
	var out []byte
	half := make([]byte, readLen/2)
	out = append(out, put(ptr(dataIn(readITT, 0, 0, len(half), true)), half, hd, dd)...)
	out = append(out, put(ptr(withStatus(dataIn(readITT, 1, readLen/2, len(half), true), scriptStatSN)), half, hd, dd)...)
	out = append(out, put(ptr(r2t(0, 0, 4096)), nil, hd, dd)...)
	out = append(out, put(&proto.NOPIn{ITT: proto.ReservedTag, TTT: 55, StatSN: scriptStatSN + 1, ExpCmdSN: 3,
		MaxCmdSN: scriptMaxCmd}, nil, hd, dd)...)
	out = append(out, put(ptr(r2t(1, 4096, 4096)), nil, hd, dd)...)
	out = append(out, put(ptr(response(writeITT, scriptStatSN+1)), nil, hd, dd)...)
	out = append(out, put(&proto.NOPIn{DataSegmentLength: 4, ITT: 0x80000001, TTT: proto.ReservedTag,
		StatSN: scriptStatSN + 2, ExpCmdSN: 3, MaxCmdSN: scriptMaxCmd}, []byte("ping"), hd, dd)...)
	return out
}

func ptr[T any](v T) *T { return &v }
