package bench

import "time"

// Protocols a target speaks.
const (
	ProtoNVMeTCP = "nvme-tcp"
	ProtoISCSI   = "iscsi"
	ProtoRaw     = "raw-tcp"
)

// Endpoint is where a started target listens, and what the initiators need to know
// about it.
type Endpoint struct {
	Protocol string `json:"protocol"`
	Addr     string `json:"addr"`           // host:port
	Name     string `json:"name,omitempty"` // subsystem NQN or target IQN
	LUN      int    `json:"lun,omitempty"`
	PID      int    `json:"pid"`    // the target process, sampled for CPU time
	MaxQD    int    `json:"max_qd"` // what "max" resolves to; 0: ask the initiator
	// BlockSize is the LBA size the target was configured with (iSCSI initiators that
	// count in blocks need it; the Go NVMe initiator reads it from Identify).
	BlockSize int `json:"block_size"`
}

// Timing is a point's schedule: an unmeasured warm-up, then the measured window.
type Timing struct {
	Warmup   time.Duration `json:"warmup_ns"`
	Duration time.Duration `json:"duration_ns"`
}

// Sample is one measured point of one repetition: what the harness writes as JSON.
type Sample struct {
	Initiator string    `json:"initiator"`
	Target    string    `json:"target"`
	Protocol  string    `json:"protocol"`
	Family    string    `json:"family"`
	Backend   string    `json:"backend,omitempty"`
	Point     Point     `json:"point"`
	Rep       int       `json:"rep"`
	StartedAt time.Time `json:"started_at"`
	IOs       uint64    `json:"ios"`
	Errors    uint64    `json:"errors"`
	ElapsedNs int64     `json:"elapsed_ns"`
	IOPS      float64   `json:"iops"`
	MBps      float64   `json:"mb_per_s"`
	Latency   Latency   `json:"latency"`
	// TargetCPUNs is the target process's user+system CPU time over the measured
	// window, from /proc/<pid>/stat.
	TargetCPUNs int64 `json:"target_cpu_ns"`
	// InitiatorIdle is the share of the measured time the initiator spent in polls that
	// found nothing to do (-1: the initiator does not say). Near 0, the initiator was
	// the bottleneck.
	InitiatorIdle float64 `json:"initiator_idle"`
	Bound         string  `json:"bound"` // "initiator", "target", or "unknown"
	// Contention is the share of the benchmark cores' time that went to processes the
	// harness did not start (/proc/stat less the harness's process tree); -1 when /proc
	// cannot tell. Above the run's threshold the point was measured again.
	Contention float64 `json:"contention"`
	Retries    int     `json:"retries,omitempty"`
	Note       string  `json:"note,omitempty"`
}

// CPUPerMillion is the target's CPU seconds per million I/Os.
func (s Sample) CPUPerMillion() float64 {
	if s.IOs == 0 {
		return 0
	}
	return float64(s.TargetCPUNs) / 1e9 / float64(s.IOs) * 1e6
}

// finish fills the rates and the bound from the counters.
func (s *Sample) finish(bs int) {
	if s.ElapsedNs > 0 {
		sec := float64(s.ElapsedNs) / 1e9
		s.IOPS = float64(s.IOs) / sec
		s.MBps = s.IOPS * float64(bs) / 1e6
	}
	switch {
	case s.InitiatorIdle < 0:
		s.Bound = "unknown"
	case s.InitiatorIdle < boundIdle:
		s.Bound = "initiator"
	default:
		s.Bound = "target"
	}
}

// boundIdle: an initiator that waited for less than 5% of the time had no slack left,
// so the figure is its own limit rather than the target's.
const boundIdle = 0.05
