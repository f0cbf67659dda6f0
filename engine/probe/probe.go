package probe

// SiteSymbolPrefix is the package path the ELF symbols of the stubs and of `sites`
// start with.
const SiteSymbolPrefix = "sluice/engine/probe."

// StateSymbol is the ELF symbol of the shared state a tracer reads and writes.
const StateSymbol = SiteSymbolPrefix + "sites"

// StateMagic and StateVersion let a tracer check that the binary it attaches to speaks
// this ABI before it writes anything into the process.
const (
	StateMagic   = 0x62706c73 // "slpb" little-endian
	StateVersion = 1
)

// Offsets of the fields of `sites` from its symbol, the part of the ABI a tracer writes.
const (
	OffsetMagic      = 64
	OffsetVersion    = 68
	OffsetIOSem      = 72
	OffsetReplSem    = 74
	OffsetIOThresh   = 80
	OffsetReplThresh = 84
	StateSize        = 128
)

// Group is a set of sites sharing one semaphore and one sampling rate.
type Group uint8

const (
	GroupIO Group = iota + 1
	GroupRepl
)

// Site describes one probe site to a tracer.
type Site struct {
	Name   string // the BPF program's name and the stub's, e.g. "io_start"
	Symbol string // the ELF symbol of the ABI0 stub
	Group  Group
}

// Sites lists every probe site, so that a tracer attaches by this table rather than by
// names it hard-codes.
var Sites = []Site{
	{"io_start", SiteSymbolPrefix + "ioStart.abi0", GroupIO},
	{"io_done", SiteSymbolPrefix + "ioDone.abi0", GroupIO},
	{"repl_send", SiteSymbolPrefix + "replSend.abi0", GroupRepl},
	{"repl_ack", SiteSymbolPrefix + "replAck.abi0", GroupRepl},
	{"journal_enqueue", SiteSymbolPrefix + "journalEnqueue.abi0", GroupRepl},
	{"journal_dequeue", SiteSymbolPrefix + "journalDequeue.abi0", GroupRepl},
}

// state is the memory shared with the kernel and the tracer. Its padding gives it
// cache lines of its own, so that no write to a neighbouring variable evicts the line
// every site loads. It holds no pointer and is statically initialised (magic is not
// zero), so the linker puts it in .noptrdata, a file-backed writable page: the kernel's
// ref_ctr_offset only works on such a page.
type state struct {
	_          [64]byte
	magic      uint32
	version    uint32
	ioSem      uint16 // raised by the kernel while an I/O uprobe is installed
	replSem    uint16 // likewise for the replication sites
	_          uint32
	ioThresh   uint32 // sample a command when the high half of its hash is <= this
	replThresh uint32
	_          [40]byte
}

// sites is written only by the kernel (the semaphores) and by a tracer through
// /proc/PID/mem (the thresholds); Go code only reads it. A plain load is enough: a stale
// read costs at most a sample missed or taken while a tracer comes or goes.
var sites = state{
	magic: StateMagic, version: StateVersion,
	ioThresh: ^uint32(0), replThresh: ^uint32(0),
}

// IOEnabled reports whether a tracer listens at the I/O sites. Callers test it before
// building a site's arguments, so that an unattached site is one load and one branch:
//
//	if probe.IOEnabled() {
//		probe.IOStart(vol, reactor, key, arrivalNs, waitedNs)
//	}
func IOEnabled() bool { return compiled && sites.ioSem != 0 }

// ReplEnabled reports whether a tracer listens at the replication sites.
func ReplEnabled() bool { return compiled && sites.replSem != 0 }

// sampled decides, from an operation's key and salt alone, whether it is in the
// sample: a multiply-xorshift-multiply hash spreads keys that differ in any bit (even
// runs of consecutive keys and times) evenly over the high half.
func sampled(key, salt uint64, thresh uint32) bool {
	x := key*0x9e3779b97f4a7c15 ^ salt
	x ^= x >> 32
	x *= 0xff51afd7ed558ccd
	return uint32(x>>32) <= thresh
}

// IOStart marks an I/O command that has become executable on volume vol, on reactor.
// key identifies the command among all those in flight in the process (the transport
// makes it from its connection and slot) and arrivalNs is its arrival on the caller's
// clock: together they pick the sample, so IODone must get the same pair. waitedNs is
// how long ago, on the caller's clock, the command arrived (an R2T write waits for its
// data before it runs); the tracer backdates the start by it.
//
// The gate is inlined; the arguments are evaluated before it, so a caller whose
// arguments cost anything tests IOEnabled first. Any goroutine; never allocates.
func IOStart(vol string, reactor int, key uint64, arrivalNs, waitedNs int64) {
	if IOEnabled() {
		ioStartSampled(vol, reactor, key, arrivalNs, waitedNs)
	}
}

// IODone marks the answer to a command that IOStart saw (same key and arrivalNs), with
// its status (0 for success; the transport's status code otherwise).
func IODone(vol string, reactor int, key uint64, arrivalNs int64, status int64) {
	if IOEnabled() {
		ioDoneSampled(vol, reactor, key, arrivalNs, status)
	}
}

// ReplSend marks frame seq of volume vol leaving for partner. The tracer pairs it with
// ReplAck on (vol, partner, seq) for the send→ack latency. Like every replication site
// it is one inlined load and branch when nobody traces, so a caller needs no gate.
func ReplSend(vol, partner string, seq uint64) {
	if ReplEnabled() {
		replSendSampled(vol, partner, seq)
	}
}

// ReplAck marks partner's acknowledgement of frame seq of volume vol.
func ReplAck(vol, partner string, seq uint64) {
	if ReplEnabled() {
		replAckSampled(vol, partner, seq)
	}
}

// JournalEnqueue marks entry seq of volume vol entering the replication journal.
func JournalEnqueue(vol string, seq uint64) {
	if ReplEnabled() {
		journalEnqueueSampled(vol, seq)
	}
}

// JournalDequeue marks entry seq of volume vol leaving the journal (sent and retired).
func JournalDequeue(vol string, seq uint64) {
	if ReplEnabled() {
		journalDequeueSampled(vol, seq)
	}
}

// The out-of-line halves: only a traced process reaches them.

func ioStartSampled(vol string, reactor int, key uint64, arrivalNs, waitedNs int64) {
	if sampled(key, uint64(arrivalNs), sites.ioThresh) {
		ioStart(vol, reactor, key, arrivalNs, waitedNs)
	}
}

func ioDoneSampled(vol string, reactor int, key uint64, arrivalNs, status int64) {
	if sampled(key, uint64(arrivalNs), sites.ioThresh) {
		ioDone(vol, reactor, key, arrivalNs, status)
	}
}

func replSendSampled(vol, partner string, seq uint64) {
	if sampled(seq, 0, sites.replThresh) {
		replSend(vol, partner, seq)
	}
}

func replAckSampled(vol, partner string, seq uint64) {
	if sampled(seq, 0, sites.replThresh) {
		replAck(vol, partner, seq)
	}
}

func journalEnqueueSampled(vol string, seq uint64) {
	if sampled(seq, 0, sites.replThresh) {
		journalEnqueue(vol, seq)
	}
}

func journalDequeueSampled(vol string, seq uint64) {
	if sampled(seq, 0, sites.replThresh) {
		journalDequeue(vol, seq)
	}
}
