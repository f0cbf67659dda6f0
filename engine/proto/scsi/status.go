package scsi

import (
	"encoding/binary"
	"strconv"
)

var be = binary.BigEndian

// Status is the SCSI status byte a command completes with (SAM-5 §5.3.1, table "Status
// codes"). Obsolete codes (INTERMEDIATE, COMMAND TERMINATED) are not defined: a
// target never sends them.
type Status uint8

// Status codes (SAM-5 table "Status codes").
const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04 // PRE-FETCH: the range fits the cache
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40
)

// String names the status for logs.
func (s Status) String() string {
	switch s {
	case StatusGood:
		return "GOOD"
	case StatusCheckCondition:
		return "CHECK CONDITION"
	case StatusConditionMet:
		return "CONDITION MET"
	case StatusBusy:
		return "BUSY"
	case StatusReservationConflict:
		return "RESERVATION CONFLICT"
	case StatusTaskSetFull:
		return "TASK SET FULL"
	case StatusACAActive:
		return "ACA ACTIVE"
	case StatusTaskAborted:
		return "TASK ABORTED"
	}
	return "status 0x" + strconv.FormatUint(uint64(s), 16)
}

// Good reports whether s completes the command successfully (GOOD or CONDITION MET).
func (s Status) Good() bool { return s == StatusGood || s == StatusConditionMet }
