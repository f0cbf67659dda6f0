package nvme

import "strconv"

// Status is the 15-bit NVMe status without the phase tag: the CQE status field
// (DW3 bits 31:17) shifted down one bit, as Linux's NVME_SC_* values are (Base §4.6.1,
// Figure "Completion Queue Entry: Status Field"):
//
//	bits 7:0   SC   status code
//	bits 10:8  SCT  status code type
//	bits 12:11 CRD  command retry delay
//	bit  13    M    more (information in the Error log)
//	bit  14    DNR  do not retry
//
// The zero value is success. Status values are plain integers: build them once (the
// constants below, [NewStatus]) and copy them; nothing allocates.
type Status uint16

// SCT is a status code type.
type SCT uint8

// Status code types (Base Figure "Status Code – Status Code Type Values").
const (
	SCTGeneric         SCT = 0
	SCTCommandSpecific SCT = 1
	SCTMediaError      SCT = 2
	SCTPath            SCT = 3
	SCTVendor          SCT = 7
)

const (
	statusDNR  Status = 1 << 14
	statusMore Status = 1 << 13
)

// NewStatus builds a status from its type and code (CRD, M and DNR clear).
func NewStatus(sct SCT, sc uint8) Status { return Status(sct&7)<<8 | Status(sc) }

// SC returns the status code.
func (s Status) SC() uint8 { return uint8(s) }

// SCT returns the status code type.
func (s Status) SCT() SCT { return SCT(s>>8) & 7 }

// CRD returns the command retry delay index (0 none, 1..3 select Identify CRDT1..3).
func (s Status) CRD() uint8 { return uint8(s>>11) & 3 }

// More reports the M bit.
func (s Status) More() bool { return s&statusMore != 0 }

// DNR reports the Do Not Retry bit.
func (s Status) DNR() bool { return s&statusDNR != 0 }

// WithDNR returns s with Do Not Retry set.
func (s Status) WithDNR() Status { return s | statusDNR }

// WithMore returns s with the More bit set.
func (s Status) WithMore() Status { return s | statusMore }

// WithCRD returns s with the command retry delay index set to crd (0..3).
func (s Status) WithCRD(crd uint8) Status { return s&^(3<<11) | Status(crd&3)<<11 }

// Code returns s without CRD, M and DNR: the (SCT, SC) pair to compare against the
// constants below.
func (s Status) Code() Status { return s & 0x7FF }

// Success reports whether SCT and SC are both zero.
func (s Status) Success() bool { return s.Code() == 0 }

// Generic command status, SCT 0 (Base Figure "Generic Command Status Values"; 80h and
// above are NVM command set values, NVM Figure "Generic Command Status Values").
const (
	StatusSuccess                          Status = 0x00
	StatusInvalidOpcode                    Status = 0x01
	StatusInvalidField                     Status = 0x02
	StatusCIDConflict                      Status = 0x03
	StatusDataTransferError                Status = 0x04
	StatusAbortedPowerLoss                 Status = 0x05
	StatusInternalError                    Status = 0x06
	StatusAbortRequested                   Status = 0x07
	StatusAbortedSQDeletion                Status = 0x08
	StatusAbortedFailedFused               Status = 0x09
	StatusAbortedMissingFused              Status = 0x0A
	StatusInvalidNamespaceOrFormat         Status = 0x0B
	StatusCommandSequenceError             Status = 0x0C
	StatusInvalidSGLSegmentDescriptor      Status = 0x0D
	StatusInvalidNumberOfSGLDescriptors    Status = 0x0E
	StatusDataSGLLengthInvalid             Status = 0x0F
	StatusMetadataSGLLengthInvalid         Status = 0x10
	StatusSGLDescriptorTypeInvalid         Status = 0x11
	StatusInvalidUseOfCMB                  Status = 0x12
	StatusPRPOffsetInvalid                 Status = 0x13
	StatusAtomicWriteUnitExceeded          Status = 0x14
	StatusOperationDenied                  Status = 0x15
	StatusSGLOffsetInvalid                 Status = 0x16
	StatusHostIdentifierInconsistentFormat Status = 0x18
	StatusKeepAliveTimerExpired            Status = 0x19
	StatusKeepAliveTimeoutInvalid          Status = 0x1A
	StatusAbortedPreemptAbort              Status = 0x1B
	StatusSanitizeFailed                   Status = 0x1C
	StatusSanitizeInProgress               Status = 0x1D
	StatusSGLDataBlockGranularityInvalid   Status = 0x1E
	StatusCommandNotSupportedForCMBQueue   Status = 0x1F
	StatusNamespaceWriteProtected          Status = 0x20
	StatusCommandInterrupted               Status = 0x21
	StatusTransientTransportError          Status = 0x22
	StatusProhibitedByLockdown             Status = 0x23
	StatusAdminCommandMediaNotReady        Status = 0x24

	StatusLBAOutOfRange       Status = 0x80
	StatusCapacityExceeded    Status = 0x81
	StatusNamespaceNotReady   Status = 0x82
	StatusReservationConflict Status = 0x83
	StatusFormatInProgress    Status = 0x84
)

// Command specific status, SCT 1 (Base Figure "Command Specific Status Values").
const (
	StatusCompletionQueueInvalid         Status = 0x100
	StatusInvalidQueueIdentifier         Status = 0x101
	StatusInvalidQueueSize               Status = 0x102
	StatusAbortCommandLimitExceeded      Status = 0x103
	StatusAsyncEventRequestLimitExceeded Status = 0x105
	StatusInvalidFirmwareSlot            Status = 0x106
	StatusInvalidFirmwareImage           Status = 0x107
	StatusInvalidInterruptVector         Status = 0x108
	StatusInvalidLogPage                 Status = 0x109
	StatusInvalidFormat                  Status = 0x10A
	StatusFirmwareActivationNeedsReset   Status = 0x10B
	StatusInvalidQueueDeletion           Status = 0x10C
	StatusFeatureIdentifierNotSaveable   Status = 0x10D
	StatusFeatureNotChangeable           Status = 0x10E
	StatusFeatureNotNamespaceSpecific    Status = 0x10F
	StatusOverlappingRange               Status = 0x114
	StatusNamespaceInsufficientCapacity  Status = 0x115
	StatusNamespaceIdentifierUnavailable Status = 0x116
	StatusNamespaceAlreadyAttached       Status = 0x118
	StatusNamespaceIsPrivate             Status = 0x119
	StatusNamespaceNotAttached           Status = 0x11A
	StatusThinProvisioningNotSupported   Status = 0x11B
	StatusControllerListInvalid          Status = 0x11C
	StatusDeviceSelfTestInProgress       Status = 0x11D
	StatusInvalidControllerIdentifier    Status = 0x11F
	StatusANAGroupIdentifierInvalid      Status = 0x124
	StatusANAAttachFailed                Status = 0x125

	// NVM command set specific (NVM Figure "NVM Command Set Specific Status Values").
	StatusConflictingAttributes         Status = 0x180
	StatusInvalidProtectionInformation  Status = 0x181
	StatusAttemptedWriteToReadOnlyRange Status = 0x182
	StatusCommandSizeLimitExceeded      Status = 0x183

	// Fabrics command specific (Fabrics Figure "Fabrics Command Status Values"). They
	// share codes with the NVM values above; which applies depends on the command.
	StatusConnectIncompatibleFormat Status = 0x180
	StatusConnectControllerBusy     Status = 0x181
	StatusConnectInvalidParameters  Status = 0x182
	StatusConnectRestartDiscovery   Status = 0x183
	StatusConnectInvalidHost        Status = 0x184
	StatusInvalidQueueType          Status = 0x185
	StatusDiscoverRestart           Status = 0x190
	StatusAuthenticationRequired    Status = 0x191
)

// Media and data integrity errors, SCT 2 (NVM Figure "Media and Data Integrity Error
// Values").
const (
	StatusWriteFault                       Status = 0x280
	StatusUnrecoveredReadError             Status = 0x281
	StatusEndToEndGuardCheckError          Status = 0x282
	StatusEndToEndApplicationTagCheckError Status = 0x283
	StatusEndToEndReferenceTagCheckError   Status = 0x284
	StatusCompareFailure                   Status = 0x285
	StatusAccessDenied                     Status = 0x286
	StatusDeallocatedOrUnwrittenBlock      Status = 0x287
	StatusEndToEndStorageTagCheckError     Status = 0x288
)

// Path related status, SCT 3 (Base Figure "Path Related Status Values").
const (
	StatusInternalPathError              Status = 0x300
	StatusAsymmetricAccessPersistentLoss Status = 0x301
	StatusAsymmetricAccessInaccessible   Status = 0x302
	StatusAsymmetricAccessTransition     Status = 0x303
	StatusControllerPathingError         Status = 0x360
	StatusHostPathingError               Status = 0x370
	StatusCommandAbortedByHost           Status = 0x371
)

var statusNames = map[Status]string{
	StatusSuccess:                          "success",
	StatusInvalidOpcode:                    "invalid command opcode",
	StatusInvalidField:                     "invalid field in command",
	StatusCIDConflict:                      "command id conflict",
	StatusDataTransferError:                "data transfer error",
	StatusAbortedPowerLoss:                 "aborted due to power loss",
	StatusInternalError:                    "internal error",
	StatusAbortRequested:                   "command abort requested",
	StatusAbortedSQDeletion:                "aborted due to sq deletion",
	StatusAbortedFailedFused:               "aborted due to failed fused command",
	StatusAbortedMissingFused:              "aborted due to missing fused command",
	StatusInvalidNamespaceOrFormat:         "invalid namespace or format",
	StatusCommandSequenceError:             "command sequence error",
	StatusInvalidSGLSegmentDescriptor:      "invalid sgl segment descriptor",
	StatusInvalidNumberOfSGLDescriptors:    "invalid number of sgl descriptors",
	StatusDataSGLLengthInvalid:             "data sgl length invalid",
	StatusMetadataSGLLengthInvalid:         "metadata sgl length invalid",
	StatusSGLDescriptorTypeInvalid:         "sgl descriptor type invalid",
	StatusInvalidUseOfCMB:                  "invalid use of controller memory buffer",
	StatusPRPOffsetInvalid:                 "prp offset invalid",
	StatusAtomicWriteUnitExceeded:          "atomic write unit exceeded",
	StatusOperationDenied:                  "operation denied",
	StatusSGLOffsetInvalid:                 "sgl offset invalid",
	StatusHostIdentifierInconsistentFormat: "host identifier inconsistent format",
	StatusKeepAliveTimerExpired:            "keep alive timer expired",
	StatusKeepAliveTimeoutInvalid:          "keep alive timeout invalid",
	StatusAbortedPreemptAbort:              "aborted due to preempt and abort",
	StatusSanitizeFailed:                   "sanitize failed",
	StatusSanitizeInProgress:               "sanitize in progress",
	StatusSGLDataBlockGranularityInvalid:   "sgl data block granularity invalid",
	StatusCommandNotSupportedForCMBQueue:   "command not supported for queue in cmb",
	StatusNamespaceWriteProtected:          "namespace is write protected",
	StatusCommandInterrupted:               "command interrupted",
	StatusTransientTransportError:          "transient transport error",
	StatusProhibitedByLockdown:             "prohibited by command and feature lockdown",
	StatusAdminCommandMediaNotReady:        "admin command media not ready",
	StatusLBAOutOfRange:                    "lba out of range",
	StatusCapacityExceeded:                 "capacity exceeded",
	StatusNamespaceNotReady:                "namespace not ready",
	StatusReservationConflict:              "reservation conflict",
	StatusFormatInProgress:                 "format in progress",

	StatusCompletionQueueInvalid:         "completion queue invalid",
	StatusInvalidQueueIdentifier:         "invalid queue identifier",
	StatusInvalidQueueSize:               "invalid queue size",
	StatusAbortCommandLimitExceeded:      "abort command limit exceeded",
	StatusAsyncEventRequestLimitExceeded: "asynchronous event request limit exceeded",
	StatusInvalidFirmwareSlot:            "invalid firmware slot",
	StatusInvalidFirmwareImage:           "invalid firmware image",
	StatusInvalidInterruptVector:         "invalid interrupt vector",
	StatusInvalidLogPage:                 "invalid log page",
	StatusInvalidFormat:                  "invalid format",
	StatusFirmwareActivationNeedsReset:   "firmware activation requires conventional reset",
	StatusInvalidQueueDeletion:           "invalid queue deletion",
	StatusFeatureIdentifierNotSaveable:   "feature identifier not saveable",
	StatusFeatureNotChangeable:           "feature not changeable",
	StatusFeatureNotNamespaceSpecific:    "feature not namespace specific",
	StatusOverlappingRange:               "overlapping range",
	StatusNamespaceInsufficientCapacity:  "namespace insufficient capacity",
	StatusNamespaceIdentifierUnavailable: "namespace identifier unavailable",
	StatusNamespaceAlreadyAttached:       "namespace already attached",
	StatusNamespaceIsPrivate:             "namespace is private",
	StatusNamespaceNotAttached:           "namespace not attached",
	StatusThinProvisioningNotSupported:   "thin provisioning not supported",
	StatusControllerListInvalid:          "controller list invalid",
	StatusDeviceSelfTestInProgress:       "device self-test in progress",
	StatusInvalidControllerIdentifier:    "invalid controller identifier",
	StatusANAGroupIdentifierInvalid:      "ana group identifier invalid",
	StatusANAAttachFailed:                "ana attach failed",

	StatusConflictingAttributes:        "conflicting attributes / connect incompatible format",
	StatusInvalidProtectionInformation: "invalid protection information / connect controller busy",
	StatusAttemptedWriteToReadOnlyRange: "attempted write to read only range / " +
		"connect invalid parameters",
	StatusCommandSizeLimitExceeded: "command size limit exceeded / connect restart discovery",
	StatusConnectInvalidHost:       "connect invalid host",
	StatusInvalidQueueType:         "invalid queue type",
	StatusDiscoverRestart:          "discover restart",
	StatusAuthenticationRequired:   "authentication required",

	StatusWriteFault:                       "write fault",
	StatusUnrecoveredReadError:             "unrecovered read error",
	StatusEndToEndGuardCheckError:          "end-to-end guard check error",
	StatusEndToEndApplicationTagCheckError: "end-to-end application tag check error",
	StatusEndToEndReferenceTagCheckError:   "end-to-end reference tag check error",
	StatusCompareFailure:                   "compare failure",
	StatusAccessDenied:                     "access denied",
	StatusDeallocatedOrUnwrittenBlock:      "deallocated or unwritten logical block",
	StatusEndToEndStorageTagCheckError:     "end-to-end storage tag check error",

	StatusInternalPathError:              "internal path error",
	StatusAsymmetricAccessPersistentLoss: "asymmetric access persistent loss",
	StatusAsymmetricAccessInaccessible:   "asymmetric access inaccessible",
	StatusAsymmetricAccessTransition:     "asymmetric access transition",
	StatusControllerPathingError:         "controller pathing error",
	StatusHostPathingError:               "host pathing error",
	StatusCommandAbortedByHost:           "command aborted by host",
}

// String names the status for logs and tests, for example
// "invalid field in command (sct 0h sc 02h) dnr". Codes 80h..83h of SCT 1 are shared by
// the NVM command set and Fabrics Connect; both names are shown. It allocates; keep it
// off the per-I/O path.
func (s Status) String() string {
	name, ok := statusNames[s.Code()]
	if !ok {
		name = "unknown status"
	}
	out := name + " (sct " + strconv.FormatUint(uint64(s.SCT()), 16) + "h sc " +
		hex2(s.SC()) + "h)"
	if c := s.CRD(); c != 0 {
		out += " crd" + strconv.Itoa(int(c))
	}
	if s.More() {
		out += " more"
	}
	if s.DNR() {
		out += " dnr"
	}
	return out
}
