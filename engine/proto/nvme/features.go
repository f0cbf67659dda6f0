package nvme

// Set/Get Features encodings (Base §5.27.1). The feature value travels in CDW11 of Set
// Features and comes back in DW0 of the Get Features completion, with the same layout
// unless noted.

// Get Features SEL values, CDW10 bits 10:8.
const (
	SELCurrent      uint8 = 0
	SELDefault      uint8 = 1
	SELSaved        uint8 = 2
	SELCapabilities uint8 = 3 // DW0: bit0 saveable, bit1 namespace specific, bit2 changeable
)

// Get Features SEL=3 (capabilities) DW0 bits.
const (
	FeatCapSaveable   uint32 = 1 << 0
	FeatCapNSSpecific uint32 = 1 << 1
	FeatCapChangeable uint32 = 1 << 2
)

// Arbitration, FID 01h: AB bits 2:0 (burst, 2^n; 7 = no limit), LPW 15:8, MPW 23:16,
// HPW 31:24 (weights, 0's based).
type Arbitration struct{ AB, LPW, MPW, HPW uint8 }

// Value encodes the feature.
func (a Arbitration) Value() uint32 {
	return uint32(a.AB&7) | uint32(a.LPW)<<8 | uint32(a.MPW)<<16 | uint32(a.HPW)<<24
}

// DecodeArbitration decodes the feature.
func DecodeArbitration(v uint32) Arbitration {
	return Arbitration{AB: uint8(v) & 7, LPW: uint8(v >> 8), MPW: uint8(v >> 16),
		HPW: uint8(v >> 24)}
}

// PowerManagement, FID 02h: PS bits 4:0 (power state), WH bits 7:5 (workload hint).
type PowerManagement struct{ PS, WH uint8 }

// Value encodes the feature.
func (p PowerManagement) Value() uint32 { return uint32(p.PS&0x1F) | uint32(p.WH&7)<<5 }

// DecodePowerManagement decodes the feature.
func DecodePowerManagement(v uint32) PowerManagement {
	return PowerManagement{PS: uint8(v) & 0x1F, WH: uint8(v>>5) & 7}
}

// Temperature threshold type, THSEL.
const (
	THSELOver  uint8 = 0
	THSELUnder uint8 = 1
)

// TemperatureThreshold, FID 04h: TMPTH bits 15:0 (kelvin), TMPSEL bits 19:16 (0
// composite, 1..8 sensors, 15 all), THSEL bits 21:20.
type TemperatureThreshold struct {
	TMPTH  uint16
	TMPSEL uint8
	THSEL  uint8
}

// Value encodes the feature.
func (t TemperatureThreshold) Value() uint32 {
	return uint32(t.TMPTH) | uint32(t.TMPSEL&0xF)<<16 | uint32(t.THSEL&3)<<20
}

// DecodeTemperatureThreshold decodes the feature.
func DecodeTemperatureThreshold(v uint32) TemperatureThreshold {
	return TemperatureThreshold{TMPTH: uint16(v), TMPSEL: uint8(v>>16) & 0xF,
		THSEL: uint8(v>>20) & 3}
}

// ErrorRecovery, FID 05h: TLER bits 15:0 (time limited error recovery, 100 ms units),
// DULBE bit 16 (deallocated or unwritten logical block error enable).
type ErrorRecovery struct {
	TLER  uint16
	DULBE bool
}

// Value encodes the feature.
func (e ErrorRecovery) Value() uint32 { return uint32(e.TLER) | bit32(e.DULBE, 16) }

// DecodeErrorRecovery decodes the feature.
func DecodeErrorRecovery(v uint32) ErrorRecovery {
	return ErrorRecovery{TLER: uint16(v), DULBE: v&(1<<16) != 0}
}

// VWCEnable is the Volatile Write Cache feature (FID 06h) WCE bit, CDW11 bit 0.
const VWCEnable uint32 = 1 << 0

// NumberOfQueues encodes the Number of Queues feature, FID 07h: the Set Features CDW11
// request (NSQR bits 15:0, NCQR bits 31:16) and the completion DW0 (NSQA, NCQA) share
// this layout. Counts are 0's based and exclude the admin queue; 0xFFFF is invalid in a
// request (Invalid Field). nvmet answers (maxqid-1) | (maxqid-1)<<16.
func NumberOfQueues(nsq0, ncq0 uint16) uint32 { return uint32(nsq0) | uint32(ncq0)<<16 }

// DecodeNumberOfQueues returns the 0's based submission and completion queue counts.
func DecodeNumberOfQueues(v uint32) (nsq0, ncq0 uint16) { return uint16(v), uint16(v >> 16) }

// InterruptCoalescing, FID 08h: THR bits 7:0 (0's based), TIME bits 15:8 (100 µs).
type InterruptCoalescing struct{ THR, TIME uint8 }

// Value encodes the feature.
func (i InterruptCoalescing) Value() uint32 { return uint32(i.THR) | uint32(i.TIME)<<8 }

// DecodeInterruptCoalescing decodes the feature.
func DecodeInterruptCoalescing(v uint32) InterruptCoalescing {
	return InterruptCoalescing{THR: uint8(v), TIME: uint8(v >> 8)}
}

// WriteAtomicityDN is the Write Atomicity Normal feature (FID 0Ah) DN bit, CDW11 bit 0.
const WriteAtomicityDN uint32 = 1 << 0

// Asynchronous Event Configuration, FID 0Bh, CDW11 bits: which events the host wants.
const (
	AECSMARTMask           uint32 = 0xFF    // bits 7:0 SMART critical warnings
	AECNSAttribute         uint32 = 1 << 8  // namespace attribute notices
	AECFWActivation        uint32 = 1 << 9  // firmware activation notices
	AECTelemetryLog        uint32 = 1 << 10 // telemetry log notices
	AECANAChange           uint32 = 1 << 11 // ANA change notices
	AECPredictableLatency  uint32 = 1 << 12 // predictable latency event aggregate
	AECLBAStatus           uint32 = 1 << 13 // LBA status information notices
	AECEnduranceGroupEvent uint32 = 1 << 14 // endurance group event aggregate
	AECDiscoveryLogChange  uint32 = 1 << 31 // discovery log page change (fabrics)
)

// Keep Alive Timer, FID 0Fh: CDW11 is KATO in milliseconds (0 disables), the same unit
// as Connect KATO. The controller rounds up to its KAS granularity.
const KASGranularityMs = 100

// HostIDEXHID is the Host Identifier feature (FID 81h) EXHID bit, CDW11 bit 0: set
// for a 128-bit host identifier, clear for 64-bit. Over fabrics the host ID comes from
// Connect: nvmet answers Set Features 81h with Command Sequence Error and Get Features
// 81h without EXHID with Invalid Field.
const HostIDEXHID uint32 = 1 << 0

// Reservation Notification Mask, FID 82h, CDW11 bits: set to mask the notice.
const (
	ResvMaskRegistrationPreempted uint32 = 1 << 1 // REGPRE
	ResvMaskReservationReleased   uint32 = 1 << 2 // RESREL
	ResvMaskReservationPreempted  uint32 = 1 << 3 // RESPRE
)

// ResvPersistencePTPL is the Reservation Persistence feature (FID 83h) PTPL bit, CDW11
// bit 0 in Set Features and DW0 bit 0 in Get Features.
const ResvPersistencePTPL uint32 = 1 << 0

// FeatureSaveBit is the Set Features SV bit, CDW10 bit 31.
const FeatureSaveBit uint32 = 1 << 31
