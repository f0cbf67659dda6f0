package scsi

import "strconv"

// Opcode is a CDB OPERATION CODE, byte 0 of every CDB (SPC-4 §4.2.5.1). Its top three
// bits are the GROUP CODE, which fixes the CDB length for groups 0-5.
type Opcode uint8

// Operation codes this package decodes (SPC-4 annex D, SBC-3 table "Commands for direct
// access block devices").
const (
	OpTestUnitReady        Opcode = 0x00
	OpRequestSense         Opcode = 0x03
	OpRead6                Opcode = 0x08
	OpWrite6               Opcode = 0x0A
	OpInquiry              Opcode = 0x12
	OpModeSelect6          Opcode = 0x15
	OpReserve6             Opcode = 0x16
	OpRelease6             Opcode = 0x17
	OpModeSense6           Opcode = 0x1A
	OpStartStopUnit        Opcode = 0x1B
	OpPreventAllowRemoval  Opcode = 0x1E
	OpReadCapacity10       Opcode = 0x25
	OpRead10               Opcode = 0x28
	OpWrite10              Opcode = 0x2A
	OpWriteAndVerify10     Opcode = 0x2E
	OpVerify10             Opcode = 0x2F
	OpPreFetch10           Opcode = 0x34
	OpSynchronizeCache10   Opcode = 0x35
	OpWriteSame10          Opcode = 0x41
	OpUnmap                Opcode = 0x42
	OpModeSelect10         Opcode = 0x55
	OpReserve10            Opcode = 0x56
	OpRelease10            Opcode = 0x57
	OpModeSense10          Opcode = 0x5A
	OpPersistentReserveIn  Opcode = 0x5E
	OpPersistentReserveOut Opcode = 0x5F
	OpVariableLength       Opcode = 0x7F
	OpRead16               Opcode = 0x88
	OpCompareAndWrite      Opcode = 0x89
	OpWrite16              Opcode = 0x8A
	OpOrWrite16            Opcode = 0x8B
	OpWriteAndVerify16     Opcode = 0x8E
	OpVerify16             Opcode = 0x8F
	OpPreFetch16           Opcode = 0x90
	OpSynchronizeCache16   Opcode = 0x91
	OpWriteSame16          Opcode = 0x93
	OpServiceActionIn16    Opcode = 0x9E
	OpReportLUNs           Opcode = 0xA0
	OpMaintenanceIn        Opcode = 0xA3
	OpRead12               Opcode = 0xA8
	OpWrite12              Opcode = 0xAA
	OpWriteAndVerify12     Opcode = 0xAE
	OpVerify12             Opcode = 0xAF
	OpSanitize             Opcode = 0x48
	OpReadDefectData10     Opcode = 0x37
	OpReadDefectData12     Opcode = 0xB7
	OpWriteAtomic16        Opcode = 0x9C // SBC-4
	OpExtendedCopy         Opcode = 0x83 // EXTENDED COPY(LID1)
	OpReceiveCopyResults   Opcode = 0x84 // RECEIVE COPY RESULTS (LID1)
	OpMaintenanceOut       Opcode = 0xA4 // not decoded: answered INVALID COMMAND OPERATION CODE
	OpServiceActionOut16   Opcode = 0x9F // not decoded
	OpLogSense             Opcode = 0x4D // not decoded
	OpWriteBuffer          Opcode = 0x3B // not decoded
	OpReadBuffer           Opcode = 0x3C // not decoded
	OpSendDiagnostic       Opcode = 0x1D // not decoded
	OpReceiveDiagnosticRes Opcode = 0x1C // not decoded
	OpFormatUnit           Opcode = 0x04 // not decoded
)

// Service actions of SERVICE ACTION IN (16) (SBC-3 table "SERVICE ACTION IN (16)
// service actions"), CDB byte 1 bits 4:0.
const (
	SAReadCapacity16 uint16 = 0x10
	SAGetLBAStatus   uint16 = 0x12
)

// Service actions of SANITIZE (SBC-3 table "SANITIZE service action codes"), CDB byte 1
// bits 4:0.
const (
	SASanitizeOverwrite       uint16 = 0x01
	SASanitizeBlockErase      uint16 = 0x02
	SASanitizeCryptoErase     uint16 = 0x03
	SASanitizeExitFailureMode uint16 = 0x1F
)

// Service actions of EXTENDED COPY and RECEIVE COPY RESULTS (SPC-4 tables "EXTENDED
// COPY service actions" and "RECEIVE COPY RESULTS service actions"), CDB byte 1 bits
// 4:0: the LID1 forms, with an 8-bit LIST IDENTIFIER.
const (
	SAExtendedCopyLID1    uint16 = 0x00
	SACopyStatus          uint16 = 0x00
	SACopyReceiveData     uint16 = 0x01
	SACopyOperatingParams uint16 = 0x03
	SACopyFailedSegments  uint16 = 0x04
)

// Service actions of MAINTENANCE IN (SPC-4 table "MAINTENANCE IN service actions"),
// CDB byte 1 bits 4:0.
const (
	SAReportTargetPortGroups uint16 = 0x0A
	SAReportSupportedOpcodes uint16 = 0x0C
	SAReportSupportedTMFs    uint16 = 0x0D
)

var opcodeNames = map[Opcode]string{
	OpTestUnitReady: "TEST UNIT READY", OpRequestSense: "REQUEST SENSE",
	OpRead6: "READ(6)", OpWrite6: "WRITE(6)", OpInquiry: "INQUIRY",
	OpModeSelect6: "MODE SELECT(6)", OpReserve6: "RESERVE(6)", OpRelease6: "RELEASE(6)",
	OpModeSense6: "MODE SENSE(6)", OpStartStopUnit: "START STOP UNIT",
	OpPreventAllowRemoval: "PREVENT ALLOW MEDIUM REMOVAL",
	OpReadCapacity10:      "READ CAPACITY(10)", OpRead10: "READ(10)", OpWrite10: "WRITE(10)",
	OpWriteAndVerify10: "WRITE AND VERIFY(10)", OpVerify10: "VERIFY(10)",
	OpPreFetch10: "PRE-FETCH(10)", OpSynchronizeCache10: "SYNCHRONIZE CACHE(10)",
	OpWriteSame10: "WRITE SAME(10)", OpUnmap: "UNMAP", OpModeSelect10: "MODE SELECT(10)",
	OpReserve10: "RESERVE(10)", OpRelease10: "RELEASE(10)", OpModeSense10: "MODE SENSE(10)",
	OpPersistentReserveIn: "PERSISTENT RESERVE IN", OpPersistentReserveOut: "PERSISTENT RESERVE OUT",
	OpVariableLength: "VARIABLE LENGTH", OpRead16: "READ(16)",
	OpCompareAndWrite: "COMPARE AND WRITE", OpWrite16: "WRITE(16)", OpOrWrite16: "ORWRITE(16)",
	OpWriteAndVerify16: "WRITE AND VERIFY(16)", OpVerify16: "VERIFY(16)",
	OpPreFetch16: "PRE-FETCH(16)", OpSynchronizeCache16: "SYNCHRONIZE CACHE(16)",
	OpWriteSame16: "WRITE SAME(16)", OpServiceActionIn16: "SERVICE ACTION IN(16)",
	OpReportLUNs: "REPORT LUNS", OpMaintenanceIn: "MAINTENANCE IN", OpRead12: "READ(12)",
	OpWrite12: "WRITE(12)", OpWriteAndVerify12: "WRITE AND VERIFY(12)", OpVerify12: "VERIFY(12)",
	OpSanitize: "SANITIZE", OpExtendedCopy: "EXTENDED COPY",
	OpReceiveCopyResults: "RECEIVE COPY RESULTS", OpMaintenanceOut: "MAINTENANCE OUT",
	OpServiceActionOut16: "SERVICE ACTION OUT(16)", OpReadDefectData10: "READ DEFECT DATA(10)",
	OpReadDefectData12: "READ DEFECT DATA(12)",
	OpLogSense:         "LOG SENSE", OpWriteBuffer: "WRITE BUFFER", OpReadBuffer: "READ BUFFER",
	OpSendDiagnostic: "SEND DIAGNOSTIC", OpReceiveDiagnosticRes: "RECEIVE DIAGNOSTIC RESULTS",
	OpFormatUnit: "FORMAT UNIT", OpWriteAtomic16: "WRITE ATOMIC(16)",
}

// String names the operation code for logs and traces.
func (op Opcode) String() string {
	if n, ok := opcodeNames[op]; ok {
		return n
	}
	return "opcode 0x" + strconv.FormatUint(uint64(op), 16)
}

// CDBLen returns the CDB length implied by the GROUP CODE (SPC-4 §4.2.5.1, table
// "Group Code values"), and 0 for the reserved and vendor-specific groups and for the
// variable-length opcode 7Fh, whose length is in the CDB itself.
func (op Opcode) CDBLen() int {
	if op == OpVariableLength {
		return 0
	}
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

// HasServiceActions reports whether the operation code is qualified by a service action
// field (SPC-4 §4.2.5.2), which REPORT SUPPORTED OPERATION CODES must know to answer
// reporting options 001b and 010b.
func (op Opcode) HasServiceActions() bool {
	switch op {
	case OpPersistentReserveIn, OpPersistentReserveOut, OpVariableLength, OpSanitize,
		OpExtendedCopy, OpReceiveCopyResults, OpServiceActionIn16, OpServiceActionOut16,
		OpMaintenanceIn, OpMaintenanceOut:
		return true
	}
	return false
}
