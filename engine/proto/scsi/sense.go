package scsi

import (
	"errors"
	"strconv"
)

// SenseKey is the 4-bit SENSE KEY of sense data (SPC-4 §4.5.6, table "Sense key
// descriptions").
type SenseKey uint8

// Sense keys.
const (
	SenseKeyNoSense        SenseKey = 0x0
	SenseKeyRecoveredError SenseKey = 0x1
	SenseKeyNotReady       SenseKey = 0x2
	SenseKeyMediumError    SenseKey = 0x3
	SenseKeyHardwareError  SenseKey = 0x4
	SenseKeyIllegalRequest SenseKey = 0x5
	SenseKeyUnitAttention  SenseKey = 0x6
	SenseKeyDataProtect    SenseKey = 0x7
	SenseKeyBlankCheck     SenseKey = 0x8
	SenseKeyVendorSpecific SenseKey = 0x9
	SenseKeyCopyAborted    SenseKey = 0xA
	SenseKeyAbortedCommand SenseKey = 0xB
	SenseKeyVolumeOverflow SenseKey = 0xD
	SenseKeyMiscompare     SenseKey = 0xE
	SenseKeyCompleted      SenseKey = 0xF
)

var senseKeyNames = [16]string{
	"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
	"COPY ABORTED", "ABORTED COMMAND", "sense key 0xc", "VOLUME OVERFLOW", "MISCOMPARE",
	"COMPLETED",
}

// String names the sense key for logs.
func (k SenseKey) String() string { return senseKeyNames[k&0xF] }

// SenseCode is an ADDITIONAL SENSE CODE and ADDITIONAL SENSE CODE QUALIFIER pair, ASC in
// the high byte (SPC-4 §4.5.6, table "ASC and ASCQ assignments"), as libiscsi and
// sg3_utils print them ("0x2400").
type SenseCode uint16

// ASC returns the additional sense code.
func (c SenseCode) ASC() uint8 { return uint8(c >> 8) }

// ASCQ returns the additional sense code qualifier.
func (c SenseCode) ASCQ() uint8 { return uint8(c) }

// The ASC/ASCQ pairs a block target reports (SPC-4 table "ASC and ASCQ assignments").
const (
	ASCNoAdditionalSense                SenseCode = 0x0000
	ASCOperationInProgress              SenseCode = 0x0016
	ASCLUNotReady                       SenseCode = 0x0400 // cause not reportable
	ASCLUBecomingReady                  SenseCode = 0x0401
	ASCLUNotReadyTransition             SenseCode = 0x040A // asymmetric access state transition
	ASCLUNotAccessibleStandby           SenseCode = 0x040B
	ASCLUNotAccessibleUnavailable       SenseCode = 0x040C
	ASCLUNotReadySanitizeInProgress     SenseCode = 0x041B
	ASCLUCommunicationFailure           SenseCode = 0x0800
	ASCUnreachableCopyTarget            SenseCode = 0x0804
	ASCCopyTargetDeviceNotReachable     SenseCode = 0x0D02
	ASCWriteError                       SenseCode = 0x0C00
	ASCInvalidFieldInInformationUnit    SenseCode = 0x0E03
	ASCUnrecoveredReadError             SenseCode = 0x1100
	ASCParameterListLengthError         SenseCode = 0x1A00
	ASCMiscompareDuringVerify           SenseCode = 0x1D00
	ASCInvalidCommandOperationCode      SenseCode = 0x2000
	ASCLBAOutOfRange                    SenseCode = 0x2100
	ASCInvalidFieldInCDB                SenseCode = 0x2400
	ASCLUNotSupported                   SenseCode = 0x2500
	ASCInvalidFieldInParameterList      SenseCode = 0x2600
	ASCParameterNotSupported            SenseCode = 0x2601
	ASCParameterValueInvalid            SenseCode = 0x2602
	ASCInvalidReleaseOfPR               SenseCode = 0x2604
	ASCTooManyTargetDescriptors         SenseCode = 0x2606
	ASCUnsupportedTargetDescriptorType  SenseCode = 0x2607
	ASCTooManySegmentDescriptors        SenseCode = 0x2608
	ASCUnsupportedSegmentDescriptorType SenseCode = 0x2609
	ASCWriteProtected                   SenseCode = 0x2700
	ASCHardwareWriteProtected           SenseCode = 0x2701
	ASCSoftwareWriteProtected           SenseCode = 0x2702
	ASCSpaceAllocationFailedWP          SenseCode = 0x2707
	ASCPowerOnResetOrBusDeviceReset     SenseCode = 0x2900
	ASCPowerOnOccurred                  SenseCode = 0x2901
	ASCSCSIBusResetOccurred             SenseCode = 0x2902
	ASCBusDeviceResetFunctionOccurred   SenseCode = 0x2903
	ASCDeviceInternalReset              SenseCode = 0x2904
	ASCITNexusLossOccurred              SenseCode = 0x2907
	ASCParametersChanged                SenseCode = 0x2A00
	ASCModeParametersChanged            SenseCode = 0x2A01
	ASCReservationsPreempted            SenseCode = 0x2A03
	ASCReservationsReleased             SenseCode = 0x2A04
	ASCRegistrationsPreempted           SenseCode = 0x2A05
	ASCAsymmetricAccessStateChanged     SenseCode = 0x2A06
	ASCCapacityDataChanged              SenseCode = 0x2A09
	ASCCommandSequenceError             SenseCode = 0x2C00
	ASCCommandsClearedByAnotherInit     SenseCode = 0x2F00
	ASCSanitizeCommandFailed            SenseCode = 0x3103
	ASCThinProvisioningSoftThreshold    SenseCode = 0x3807
	ASCSavingParametersNotSupported     SenseCode = 0x3900
	ASCMediumNotPresent                 SenseCode = 0x3A00
	ASCInquiryDataChanged               SenseCode = 0x3F03
	ASCReportedLUNsDataChanged          SenseCode = 0x3F0E
	ASCInternalTargetFailure            SenseCode = 0x4400
	ASCOverlappedCommandsAttempted      SenseCode = 0x4E00
	ASCMediumRemovalPrevented           SenseCode = 0x5302
	ASCInsufficientReservationResources SenseCode = 0x5502
	ASCInsufficientRegistrationResource SenseCode = 0x5504
)

var senseCodeNames = map[SenseCode]string{
	ASCNoAdditionalSense:      "NO ADDITIONAL SENSE INFORMATION",
	ASCOperationInProgress:    "OPERATION IN PROGRESS",
	ASCLUNotReady:             "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
	ASCLUBecomingReady:        "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
	ASCLUNotReadyTransition:   "LOGICAL UNIT NOT READY, ASYMMETRIC ACCESS STATE TRANSITION",
	ASCLUNotAccessibleStandby: "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
	ASCLUNotAccessibleUnavailable: "LOGICAL UNIT NOT ACCESSIBLE, " +
		"TARGET PORT IN UNAVAILABLE STATE",
	ASCLUNotReadySanitizeInProgress:     "LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS",
	ASCLUCommunicationFailure:           "LOGICAL UNIT COMMUNICATION FAILURE",
	ASCUnreachableCopyTarget:            "UNREACHABLE COPY TARGET",
	ASCCopyTargetDeviceNotReachable:     "COPY TARGET DEVICE NOT REACHABLE",
	ASCWriteError:                       "WRITE ERROR",
	ASCInvalidFieldInInformationUnit:    "INVALID FIELD IN COMMAND INFORMATION UNIT",
	ASCUnrecoveredReadError:             "UNRECOVERED READ ERROR",
	ASCParameterListLengthError:         "PARAMETER LIST LENGTH ERROR",
	ASCMiscompareDuringVerify:           "MISCOMPARE DURING VERIFY OPERATION",
	ASCInvalidCommandOperationCode:      "INVALID COMMAND OPERATION CODE",
	ASCLBAOutOfRange:                    "LOGICAL BLOCK ADDRESS OUT OF RANGE",
	ASCInvalidFieldInCDB:                "INVALID FIELD IN CDB",
	ASCLUNotSupported:                   "LOGICAL UNIT NOT SUPPORTED",
	ASCInvalidFieldInParameterList:      "INVALID FIELD IN PARAMETER LIST",
	ASCParameterNotSupported:            "PARAMETER NOT SUPPORTED",
	ASCParameterValueInvalid:            "PARAMETER VALUE INVALID",
	ASCInvalidReleaseOfPR:               "INVALID RELEASE OF PERSISTENT RESERVATION",
	ASCTooManyTargetDescriptors:         "TOO MANY TARGET DESCRIPTORS",
	ASCUnsupportedTargetDescriptorType:  "UNSUPPORTED TARGET DESCRIPTOR TYPE CODE",
	ASCTooManySegmentDescriptors:        "TOO MANY SEGMENT DESCRIPTORS",
	ASCUnsupportedSegmentDescriptorType: "UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE",
	ASCWriteProtected:                   "WRITE PROTECTED",
	ASCHardwareWriteProtected:           "HARDWARE WRITE PROTECTED",
	ASCSoftwareWriteProtected:           "LOGICAL UNIT SOFTWARE WRITE PROTECTED",
	ASCSpaceAllocationFailedWP:          "SPACE ALLOCATION FAILED WRITE PROTECT",
	ASCPowerOnResetOrBusDeviceReset:     "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
	ASCPowerOnOccurred:                  "POWER ON OCCURRED",
	ASCSCSIBusResetOccurred:             "SCSI BUS RESET OCCURRED",
	ASCBusDeviceResetFunctionOccurred:   "BUS DEVICE RESET FUNCTION OCCURRED",
	ASCDeviceInternalReset:              "DEVICE INTERNAL RESET",
	ASCITNexusLossOccurred:              "I_T NEXUS LOSS OCCURRED",
	ASCParametersChanged:                "PARAMETERS CHANGED",
	ASCModeParametersChanged:            "MODE PARAMETERS CHANGED",
	ASCReservationsPreempted:            "RESERVATIONS PREEMPTED",
	ASCReservationsReleased:             "RESERVATIONS RELEASED",
	ASCRegistrationsPreempted:           "REGISTRATIONS PREEMPTED",
	ASCAsymmetricAccessStateChanged:     "ASYMMETRIC ACCESS STATE CHANGED",
	ASCCapacityDataChanged:              "CAPACITY DATA HAS CHANGED",
	ASCCommandSequenceError:             "COMMAND SEQUENCE ERROR",
	ASCCommandsClearedByAnotherInit:     "COMMANDS CLEARED BY ANOTHER INITIATOR",
	ASCSanitizeCommandFailed:            "SANITIZE COMMAND FAILED",
	ASCThinProvisioningSoftThreshold:    "THIN PROVISIONING SOFT THRESHOLD REACHED",
	ASCSavingParametersNotSupported:     "SAVING PARAMETERS NOT SUPPORTED",
	ASCMediumNotPresent:                 "MEDIUM NOT PRESENT",
	ASCInquiryDataChanged:               "INQUIRY DATA HAS CHANGED",
	ASCReportedLUNsDataChanged:          "REPORTED LUNS DATA HAS CHANGED",
	ASCInternalTargetFailure:            "INTERNAL TARGET FAILURE",
	ASCOverlappedCommandsAttempted:      "OVERLAPPED COMMANDS ATTEMPTED",
	ASCMediumRemovalPrevented:           "MEDIUM REMOVAL PREVENTED",
	ASCInsufficientReservationResources: "INSUFFICIENT RESERVATION RESOURCES",
	ASCInsufficientRegistrationResource: "INSUFFICIENT REGISTRATION RESOURCES",
}

// String names the pair for logs, "asc/ascq 0xXXXX" when it is not one of the above.
func (c SenseCode) String() string {
	if n, ok := senseCodeNames[c]; ok {
		return n
	}
	return "asc/ascq 0x" + strconv.FormatUint(uint64(c)|0x10000, 16)[1:]
}

// SenseSpecific is the 3-byte SENSE KEY SPECIFIC field (SPC-4 §4.5.2.4). Bit 7 of byte
// 0 is SKSV; the zero value is "not valid". Its layout depends on the sense key: a field
// pointer for ILLEGAL REQUEST, a progress indication for NOT READY and NO SENSE.
type SenseSpecific [3]byte

const (
	sksValid = 0x80 // SKSV, byte 0 bit 7
	sksCD    = 0x40 // C/D, byte 0 bit 6: the error is in the CDB, not the parameter data
	sksBPV   = 0x08 // BPV, byte 0 bit 3: BIT POINTER is valid
)

// FieldPointer builds the field pointer sense-key specific data of ILLEGAL REQUEST
// (SPC-4 §4.5.2.4.2): inCDB sets C/D (the byte offset is into the CDB rather than the
// parameter list), offset is the byte of the field in error, and bit, when 0..7, is its
// most significant bit in that byte (BPV=1); any other bit value leaves BPV=0.
func FieldPointer(inCDB bool, offset uint16, bit int) SenseSpecific {
	s := SenseSpecific{sksValid, byte(offset >> 8), byte(offset)}
	if inCDB {
		s[0] |= sksCD
	}
	if bit >= 0 && bit <= 7 {
		s[0] |= sksBPV | byte(bit)
	}
	return s
}

// ProgressIndication builds the progress indication of NOT READY / NO SENSE (SPC-4
// §4.5.2.4.3): the fraction complete in units of 1/65536.
func ProgressIndication(progress uint16) SenseSpecific {
	return SenseSpecific{sksValid, byte(progress >> 8), byte(progress)}
}

// Valid reports SKSV.
func (s SenseSpecific) Valid() bool { return s[0]&sksValid != 0 }

// Field decodes a field pointer: inCDB (C/D), the byte offset, and the bit (-1 when
// BPV=0). ok is false when SKSV is clear.
func (s SenseSpecific) Field() (inCDB bool, offset uint16, bit int, ok bool) {
	if !s.Valid() {
		return false, 0, -1, false
	}
	bit = -1
	if s[0]&sksBPV != 0 {
		bit = int(s[0] & 7)
	}
	return s[0]&sksCD != 0, uint16(s[1])<<8 | uint16(s[2]), bit, true
}

// Sense is the content of sense data, independent of its format. Build values with
// composite literals; they are small and copied by value.
type Sense struct {
	Key  SenseKey
	Code SenseCode
	// Deferred selects response code 71h/73h: the error belongs to an earlier command.
	Deferred bool
	// InfoValid and Info are the INFORMATION field: for a miscompare, the offset in
	// bytes of the first miscompare within the compared data (SBC-3 §5.3, §5.22).
	InfoValid bool
	Info      uint64
	Specific  SenseSpecific
}

// Sense data lengths.
const (
	// SenseFixedLen is the length of fixed format sense data (SPC-4 §4.5.3).
	SenseFixedLen = 18
	// SenseMaxLen bounds descriptor format sense data as this package writes it: the
	// 8-byte header, an information descriptor and a sense-key specific descriptor.
	SenseMaxLen = 8 + senseInfoDescLen + senseSKSDescLen

	senseInfoDescLen = 12
	senseSKSDescLen  = 8
)

// Response codes (SPC-4 §4.5.1).
const (
	senseFixedCurrent       = 0x70
	senseFixedDeferred      = 0x71
	senseDescriptorCurrent  = 0x72
	senseDescriptorDeferred = 0x73
)

// Put writes s in descriptor format when descriptor is set (the Control mode page
// D_SENSE bit, or REQUEST SENSE with DESC=1) and in fixed format otherwise, and returns
// the length written. dst must hold [SenseMaxLen] bytes.
func (s *Sense) Put(dst []byte, descriptor bool) int {
	if descriptor {
		return s.PutDescriptor(dst)
	}
	return s.PutFixed(dst)
}

// PutFixed writes fixed format sense data (SPC-4 §4.5.3) into dst[:18] and returns 18.
// An INFORMATION value above 32 bits cannot be carried: VALID is then cleared, as
// SPC-4 requires.
func (s *Sense) PutFixed(dst []byte) int {
	b := dst[:SenseFixedLen]
	clear(b)
	b[0] = senseFixedCurrent // @0 RESPONSE CODE, VALID bit 7
	if s.Deferred {
		b[0] = senseFixedDeferred
	}
	if s.InfoValid && s.Info <= 0xFFFFFFFF {
		b[0] |= 0x80
		be.PutUint32(b[3:7], uint32(s.Info)) // @3 INFORMATION
	}
	b[2] = byte(s.Key & 0xF)                   // @2 SENSE KEY bits 3:0
	b[7] = SenseFixedLen - 8                   // @7 ADDITIONAL SENSE LENGTH
	b[12], b[13] = s.Code.ASC(), s.Code.ASCQ() // @12 ASC, @13 ASCQ
	copy(b[15:18], s.Specific[:])              // @15 SENSE KEY SPECIFIC
	return SenseFixedLen
}

// PutDescriptor writes descriptor format sense data (SPC-4 §4.5.2) into dst and returns
// its length: the header, then an information descriptor (type 00h) when InfoValid and
// a sense-key specific descriptor (type 02h) when SKSV is set.
func (s *Sense) PutDescriptor(dst []byte) int {
	b := dst[:8]
	clear(b)
	b[0] = senseDescriptorCurrent // @0 RESPONSE CODE
	if s.Deferred {
		b[0] = senseDescriptorDeferred
	}
	b[1] = byte(s.Key & 0xF)                 // @1 SENSE KEY
	b[2], b[3] = s.Code.ASC(), s.Code.ASCQ() // @2 ASC, @3 ASCQ
	n := 8
	if s.InfoValid {
		d := dst[n : n+senseInfoDescLen]
		clear(d)
		d[0], d[1], d[2] = 0x00, senseInfoDescLen-2, 0x80 // type, additional length, VALID
		be.PutUint64(d[4:12], s.Info)
		n += senseInfoDescLen
	}
	if s.Specific.Valid() {
		d := dst[n : n+senseSKSDescLen]
		clear(d)
		d[0], d[1] = 0x02, senseSKSDescLen-2
		copy(d[4:7], s.Specific[:])
		n += senseSKSDescLen
	}
	dst[7] = byte(n - 8) // @7 ADDITIONAL SENSE LENGTH
	return n
}

// Errors from DecodeSense. They describe malformed input, never a wire status.
var (
	ErrSenseShort        = errors.New("scsi: sense data too short")
	ErrSenseResponseCode = errors.New("scsi: sense data response code is not 70h-73h")
	ErrSenseDescriptor   = errors.New("scsi: sense data descriptor overruns its length")
)

// DecodeSense parses fixed or descriptor format sense data, as an initiator (or a test
// playing one) receives it. Fields past the end of a short buffer read as zero;
// descriptors other than information and sense-key specific are skipped. On error the
// returned Sense is the zero value.
func DecodeSense(b []byte) (Sense, error) {
	if len(b) < 8 {
		return Sense{}, ErrSenseShort
	}
	switch b[0] & 0x7F {
	case senseFixedCurrent, senseFixedDeferred:
		return decodeFixedSense(b), nil
	case senseDescriptorCurrent, senseDescriptorDeferred:
		return decodeDescriptorSense(b)
	}
	return Sense{}, ErrSenseResponseCode
}

func decodeFixedSense(b []byte) Sense {
	var f [SenseFixedLen]byte
	copy(f[:], b[:min(len(b), 8+int(b[7]))])
	s := Sense{
		Key:      SenseKey(f[2] & 0xF),
		Code:     SenseCode(f[12])<<8 | SenseCode(f[13]),
		Deferred: f[0]&0x7F == senseFixedDeferred,
	}
	if f[0]&0x80 != 0 {
		s.InfoValid, s.Info = true, uint64(be.Uint32(f[3:7]))
	}
	if f[15]&sksValid != 0 {
		copy(s.Specific[:], f[15:18])
	}
	return s
}

func decodeDescriptorSense(b []byte) (Sense, error) {
	s := Sense{
		Key:      SenseKey(b[1] & 0xF),
		Code:     SenseCode(b[2])<<8 | SenseCode(b[3]),
		Deferred: b[0]&0x7F == senseDescriptorDeferred,
	}
	end := min(len(b), 8+int(b[7]))
	for off := 8; off < end; {
		if off+2 > end || off+2+int(b[off+1]) > end {
			return Sense{}, ErrSenseDescriptor
		}
		d := b[off : off+2+int(b[off+1])]
		switch {
		case d[0] == 0x00 && len(d) == senseInfoDescLen:
			s.InfoValid, s.Info = d[2]&0x80 != 0, 0
			if s.InfoValid {
				s.Info = be.Uint64(d[4:12])
			}
		case d[0] == 0x02 && len(d) == senseSKSDescLen:
			s.Specific = SenseSpecific{}
			if d[4]&sksValid != 0 {
				copy(s.Specific[:], d[4:7])
			}
		}
		off += len(d)
	}
	return s, nil
}

// SenseError is a command that must complete with CHECK CONDITION and this sense data.
// Decoders and checks in this package return the package's preallocated values for it
// (so the per-I/O error path allocates nothing); treat them as read-only.
type SenseError struct {
	Sense Sense
}

// Error formats the sense for logs. It allocates; keep it off the per-I/O path.
func (e *SenseError) Error() string {
	msg := "scsi: " + e.Sense.Key.String() + ": " + e.Sense.Code.String()
	if inCDB, off, bit, ok := e.Sense.Specific.Field(); ok &&
		e.Sense.Key == SenseKeyIllegalRequest {
		where := " (parameter byte "
		if inCDB {
			where = " (cdb byte "
		}
		msg += where + strconv.Itoa(int(off))
		if bit >= 0 {
			msg += " bit " + strconv.Itoa(bit)
		}
		msg += ")"
	}
	return msg
}

// NewSenseError builds a SenseError. It allocates: the per-I/O path uses the
// preallocated errors below and the tables behind [InvalidFieldInCDB].
func NewSenseError(key SenseKey, code SenseCode, specific SenseSpecific) *SenseError {
	return &SenseError{Sense: Sense{Key: key, Code: code, Specific: specific}}
}

// AsSense returns the sense data of err when it is (or wraps) a *SenseError.
func AsSense(err error) (Sense, bool) {
	var se *SenseError
	if errors.As(err, &se) {
		return se.Sense, true
	}
	return Sense{}, false
}

// Preallocated sense errors the command layer answers with. Read-only.
var (
	// ErrInvalidOpcode: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE, field pointer
	// at CDB byte 0. libiscsi reports a test SKIPPED, not FAILED, on this answer.
	ErrInvalidOpcode = NewSenseError(SenseKeyIllegalRequest, ASCInvalidCommandOperationCode,
		FieldPointer(true, 0, 7))
	// ErrLBAOutOfRange: ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (SBC-3 §4.5).
	ErrLBAOutOfRange = NewSenseError(SenseKeyIllegalRequest, ASCLBAOutOfRange, SenseSpecific{})
	// ErrParameterListLength: ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
	ErrParameterListLength = NewSenseError(SenseKeyIllegalRequest,
		ASCParameterListLengthError, SenseSpecific{})
	// ErrWriteProtected: DATA PROTECT, WRITE PROTECTED (a read-only LU, or SWP=1).
	ErrWriteProtected = NewSenseError(SenseKeyDataProtect, ASCWriteProtected, SenseSpecific{})
	// ErrLUNotSupported: ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED, for commands
	// other than INQUIRY and REPORT LUNS addressed to a LUN that does not exist.
	ErrLUNotSupported = NewSenseError(SenseKeyIllegalRequest, ASCLUNotSupported,
		SenseSpecific{})
	// ErrInvalidReleaseOfPR: ILLEGAL REQUEST, INVALID RELEASE OF PERSISTENT RESERVATION.
	ErrInvalidReleaseOfPR = NewSenseError(SenseKeyIllegalRequest, ASCInvalidReleaseOfPR,
		SenseSpecific{})
	// ErrInsufficientRegistrationResources: ILLEGAL REQUEST, INSUFFICIENT REGISTRATION
	// RESOURCES (SPC-4 §5.12.7: the registration table is full).
	ErrInsufficientRegistrationResources = NewSenseError(SenseKeyIllegalRequest,
		ASCInsufficientRegistrationResource, SenseSpecific{})
	// ErrMediumNotPresent: NOT READY, MEDIUM NOT PRESENT (a stopped removable LU).
	ErrMediumNotPresent = NewSenseError(SenseKeyNotReady, ASCMediumNotPresent, SenseSpecific{})
	// ErrInternalTargetFailure: HARDWARE ERROR, INTERNAL TARGET FAILURE.
	ErrInternalTargetFailure = NewSenseError(SenseKeyHardwareError, ASCInternalTargetFailure,
		SenseSpecific{})
	// ErrWriteError: MEDIUM ERROR, WRITE ERROR (the backing device failed a write).
	ErrWriteError = NewSenseError(SenseKeyMediumError, ASCWriteError, SenseSpecific{})
	// ErrUnrecoveredReadError: MEDIUM ERROR, UNRECOVERED READ ERROR.
	ErrUnrecoveredReadError = NewSenseError(SenseKeyMediumError, ASCUnrecoveredReadError,
		SenseSpecific{})
)

// maxCDBFieldByte bounds the CDB offsets the preallocated field pointer table covers: a
// 32-byte variable-length CDB.
const maxCDBFieldByte = 32

// invalidCDB[byte][bit+1] is ILLEGAL REQUEST, INVALID FIELD IN CDB pointing at that
// byte and bit (index 0: BPV=0).
var invalidCDB = newInvalidCDBTable()

func newInvalidCDBTable() *[maxCDBFieldByte][9]SenseError {
	var t [maxCDBFieldByte][9]SenseError
	for off := range t {
		for bit := -1; bit <= 7; bit++ {
			t[off][bit+1].Sense = Sense{Key: SenseKeyIllegalRequest, Code: ASCInvalidFieldInCDB,
				Specific: FieldPointer(true, uint16(off), bit)}
		}
	}
	return &t
}

// InvalidFieldInCDB returns the preallocated ILLEGAL REQUEST, INVALID FIELD IN CDB
// error whose field pointer names CDB byte offset and bit (bit -1: no bit pointer).
// It allocates nothing. Offsets past 31 are a programming error and panic.
func InvalidFieldInCDB(offset, bit int) *SenseError {
	if offset < 0 || offset >= maxCDBFieldByte || bit < -1 || bit > 7 {
		panic("scsi: CDB field pointer out of range")
	}
	return &invalidCDB[offset][bit+1]
}

// InvalidFieldInParameterList builds ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST
// pointing at byte offset and bit of the parameter data (bit -1: no bit pointer). It
// allocates: parameter lists are decoded on the control path.
func InvalidFieldInParameterList(offset int, bit int) *SenseError {
	return NewSenseError(SenseKeyIllegalRequest, ASCInvalidFieldInParameterList,
		FieldPointer(false, uint16(min(offset, 0xFFFF)), bit))
}
