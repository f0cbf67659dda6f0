package nvme

import "strconv"

// AdminOpcode is an admin command opcode, SQE CDW0 bits 7:0 (Base §5, Figure "Opcodes
// for Admin Commands"). Bits 1:0 give the data direction (see [DataDirection]).
type AdminOpcode uint8

// Admin opcodes.
const (
	AdminDeleteIOSQ               AdminOpcode = 0x00
	AdminCreateIOSQ               AdminOpcode = 0x01
	AdminGetLogPage               AdminOpcode = 0x02
	AdminDeleteIOCQ               AdminOpcode = 0x04
	AdminCreateIOCQ               AdminOpcode = 0x05
	AdminIdentify                 AdminOpcode = 0x06
	AdminAbort                    AdminOpcode = 0x08
	AdminSetFeatures              AdminOpcode = 0x09
	AdminGetFeatures              AdminOpcode = 0x0A
	AdminAsyncEventRequest        AdminOpcode = 0x0C
	AdminNamespaceManagement      AdminOpcode = 0x0D
	AdminFirmwareCommit           AdminOpcode = 0x10
	AdminFirmwareImageDownload    AdminOpcode = 0x11
	AdminDeviceSelfTest           AdminOpcode = 0x14
	AdminNamespaceAttachment      AdminOpcode = 0x15
	AdminKeepAlive                AdminOpcode = 0x18
	AdminDirectiveSend            AdminOpcode = 0x19
	AdminDirectiveReceive         AdminOpcode = 0x1A
	AdminVirtualizationManagement AdminOpcode = 0x1C
	AdminNVMeMISend               AdminOpcode = 0x1D
	AdminNVMeMIReceive            AdminOpcode = 0x1E
	AdminDoorbellBufferConfig     AdminOpcode = 0x7C
	AdminFabrics                  AdminOpcode = 0x7F
	AdminFormatNVM                AdminOpcode = 0x80
	AdminSecuritySend             AdminOpcode = 0x81
	AdminSecurityReceive          AdminOpcode = 0x82
	AdminSanitize                 AdminOpcode = 0x84
	AdminGetLBAStatus             AdminOpcode = 0x86
)

var adminOpcodeNames = map[AdminOpcode]string{
	AdminDeleteIOSQ:               "Delete I/O Submission Queue",
	AdminCreateIOSQ:               "Create I/O Submission Queue",
	AdminGetLogPage:               "Get Log Page",
	AdminDeleteIOCQ:               "Delete I/O Completion Queue",
	AdminCreateIOCQ:               "Create I/O Completion Queue",
	AdminIdentify:                 "Identify",
	AdminAbort:                    "Abort",
	AdminSetFeatures:              "Set Features",
	AdminGetFeatures:              "Get Features",
	AdminAsyncEventRequest:        "Asynchronous Event Request",
	AdminNamespaceManagement:      "Namespace Management",
	AdminFirmwareCommit:           "Firmware Commit",
	AdminFirmwareImageDownload:    "Firmware Image Download",
	AdminDeviceSelfTest:           "Device Self-test",
	AdminNamespaceAttachment:      "Namespace Attachment",
	AdminKeepAlive:                "Keep Alive",
	AdminDirectiveSend:            "Directive Send",
	AdminDirectiveReceive:         "Directive Receive",
	AdminVirtualizationManagement: "Virtualization Management",
	AdminNVMeMISend:               "NVMe-MI Send",
	AdminNVMeMIReceive:            "NVMe-MI Receive",
	AdminDoorbellBufferConfig:     "Doorbell Buffer Config",
	AdminFabrics:                  "Fabrics",
	AdminFormatNVM:                "Format NVM",
	AdminSecuritySend:             "Security Send",
	AdminSecurityReceive:          "Security Receive",
	AdminSanitize:                 "Sanitize",
	AdminGetLBAStatus:             "Get LBA Status",
}

// String returns the spec name of the opcode.
func (o AdminOpcode) String() string {
	if s, ok := adminOpcodeNames[o]; ok {
		return s
	}
	return "admin opcode 0x" + hex2(uint8(o))
}

// NVMOpcode is an NVM command set I/O opcode, SQE CDW0 bits 7:0 (NVM §3, Figure
// "Opcodes for NVM Commands").
type NVMOpcode uint8

// NVM I/O opcodes.
const (
	NVMFlush               NVMOpcode = 0x00
	NVMWrite               NVMOpcode = 0x01
	NVMRead                NVMOpcode = 0x02
	NVMWriteUncorrectable  NVMOpcode = 0x04
	NVMCompare             NVMOpcode = 0x05
	NVMWriteZeroes         NVMOpcode = 0x08
	NVMDatasetManagement   NVMOpcode = 0x09
	NVMVerify              NVMOpcode = 0x0C
	NVMReservationRegister NVMOpcode = 0x0D
	NVMReservationReport   NVMOpcode = 0x0E
	NVMReservationAcquire  NVMOpcode = 0x11
	NVMReservationRelease  NVMOpcode = 0x15
	NVMCopy                NVMOpcode = 0x19
	NVMFabrics             NVMOpcode = 0x7F
)

var nvmOpcodeNames = map[NVMOpcode]string{
	NVMFlush:               "Flush",
	NVMWrite:               "Write",
	NVMRead:                "Read",
	NVMWriteUncorrectable:  "Write Uncorrectable",
	NVMCompare:             "Compare",
	NVMWriteZeroes:         "Write Zeroes",
	NVMDatasetManagement:   "Dataset Management",
	NVMVerify:              "Verify",
	NVMReservationRegister: "Reservation Register",
	NVMReservationReport:   "Reservation Report",
	NVMReservationAcquire:  "Reservation Acquire",
	NVMReservationRelease:  "Reservation Release",
	NVMCopy:                "Copy",
	NVMFabrics:             "Fabrics",
}

// String returns the spec name of the opcode.
func (o NVMOpcode) String() string {
	if s, ok := nvmOpcodeNames[o]; ok {
		return s
	}
	return "nvm opcode 0x" + hex2(uint8(o))
}

// Direction is the data transfer direction encoded in opcode (or FCTYPE) bits 1:0
// (Base, notes to the opcode figures: 00b none, 01b host to controller, 10b controller
// to host, 11b bidirectional).
type Direction uint8

// Transfer directions.
const (
	DirNone          Direction = 0
	DirHostToCtrl    Direction = 1
	DirCtrlToHost    Direction = 2
	DirBidirectional Direction = 3
)

// DataDirection returns the direction encoded in an opcode or FCTYPE.
func DataDirection(op uint8) Direction { return Direction(op & 3) }

// OpcodeFabrics is the Fabrics command opcode on any queue (Fabrics §6.1).
const OpcodeFabrics uint8 = 0x7F

// FCTYPE is the Fabrics command type, SQE byte @4 of a Fabrics command (Fabrics §6,
// Figure "Fabrics Command Type").
type FCTYPE uint8

// Fabrics command types.
const (
	FCTPropertySet FCTYPE = 0x00
	FCTConnect     FCTYPE = 0x01
	FCTPropertyGet FCTYPE = 0x04
	FCTAuthSend    FCTYPE = 0x05
	FCTAuthRecv    FCTYPE = 0x06
	FCTDisconnect  FCTYPE = 0x08
)

// String returns the spec name of the Fabrics command type.
func (f FCTYPE) String() string {
	switch f {
	case FCTPropertySet:
		return "Property Set"
	case FCTConnect:
		return "Connect"
	case FCTPropertyGet:
		return "Property Get"
	case FCTAuthSend:
		return "Authentication Send"
	case FCTAuthRecv:
		return "Authentication Receive"
	case FCTDisconnect:
		return "Disconnect"
	}
	return "fctype 0x" + hex2(uint8(f))
}

// CNS is the Identify Controller or Namespace Structure, CDW10 bits 7:0 (Base §5.17.1,
// Figure "CNS Values").
type CNS uint8

// CNS values.
const (
	CNSNamespace                     CNS = 0x00
	CNSController                    CNS = 0x01
	CNSActiveNSList                  CNS = 0x02
	CNSNSIDDescriptorList            CNS = 0x03
	CNSNVMSetList                    CNS = 0x04
	CNSIOCSNamespace                 CNS = 0x05
	CNSIOCSController                CNS = 0x06
	CNSIOCSActiveNSList              CNS = 0x07
	CNSIOCSIndependentNamespace      CNS = 0x08
	CNSAllocatedNSList               CNS = 0x10
	CNSAllocatedNamespace            CNS = 0x11
	CNSNSAttachedControllerList      CNS = 0x12
	CNSControllerList                CNS = 0x13
	CNSPrimaryControllerCapabilities CNS = 0x14
	CNSSecondaryControllerList       CNS = 0x15
	CNSNamespaceGranularityList      CNS = 0x16
	CNSUUIDList                      CNS = 0x17
	CNSIOCommandSet                  CNS = 0x1C
)

// LogPageID is a Get Log Page LID, CDW10 bits 7:0 (Base §5.16, Figure "Log Page
// Identifiers").
type LogPageID uint8

// Log page identifiers.
const (
	LogError                            LogPageID = 0x01
	LogSMART                            LogPageID = 0x02
	LogFirmwareSlot                     LogPageID = 0x03
	LogChangedNSList                    LogPageID = 0x04
	LogCommandEffects                   LogPageID = 0x05
	LogDeviceSelfTest                   LogPageID = 0x06
	LogTelemetryHost                    LogPageID = 0x07
	LogTelemetryController              LogPageID = 0x08
	LogEnduranceGroup                   LogPageID = 0x09
	LogPredictableLatencyNVMSet         LogPageID = 0x0A
	LogPredictableLatencyEventAggregate LogPageID = 0x0B
	LogANA                              LogPageID = 0x0C
	LogPersistentEvent                  LogPageID = 0x0D
	LogEnduranceGroupEventAggregate     LogPageID = 0x0F
	LogDiscovery                        LogPageID = 0x70
	LogReservationNotification          LogPageID = 0x80
	LogSanitizeStatus                   LogPageID = 0x81
)

// FeatureID is a Set/Get Features FID, CDW10 bits 7:0 (Base §5.27.1, Figure "Feature
// Identifiers").
type FeatureID uint8

// Feature identifiers.
const (
	FeatArbitration                 FeatureID = 0x01
	FeatPowerManagement             FeatureID = 0x02
	FeatLBARangeType                FeatureID = 0x03
	FeatTemperatureThreshold        FeatureID = 0x04
	FeatErrorRecovery               FeatureID = 0x05
	FeatVolatileWriteCache          FeatureID = 0x06
	FeatNumberOfQueues              FeatureID = 0x07
	FeatInterruptCoalescing         FeatureID = 0x08
	FeatInterruptVectorConfig       FeatureID = 0x09
	FeatWriteAtomicityNormal        FeatureID = 0x0A
	FeatAsyncEventConfig            FeatureID = 0x0B
	FeatAutonomousPowerStateTrans   FeatureID = 0x0C
	FeatHostMemoryBuffer            FeatureID = 0x0D
	FeatTimestamp                   FeatureID = 0x0E
	FeatKeepAliveTimer              FeatureID = 0x0F
	FeatHostControlledThermalMgmt   FeatureID = 0x10
	FeatNonOperationalPowerState    FeatureID = 0x11
	FeatHostBehaviorSupport         FeatureID = 0x16
	FeatSoftwareProgressMarker      FeatureID = 0x80
	FeatHostIdentifier              FeatureID = 0x81
	FeatReservationNotificationMask FeatureID = 0x82
	FeatReservationPersistence      FeatureID = 0x83
	FeatNamespaceWriteProtection    FeatureID = 0x84
)

func hex2(v uint8) string {
	s := strconv.FormatUint(uint64(v), 16)
	if len(s) == 1 {
		return "0" + s
	}
	return s
}
