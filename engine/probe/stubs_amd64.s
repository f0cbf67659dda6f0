#include "textflag.h"

// Each stub is the 5-byte NOP (NOPL 0(AX)(AX*1)) and RET: the kernel emulates a uprobe
// on this NOP without single-stepping it (or turns it into a call), which is what makes
// a hit cost microseconds instead of tens. ABI0: the arguments are on the stack from
// 8(SP) at entry; see doc.go. NOFRAME keeps the NOP the first instruction.

#define NOP5 BYTE $0x0f; BYTE $0x1f; BYTE $0x44; BYTE $0x00; BYTE $0x00

// func ioStart(vol string, reactor int, key uint64, arrivalNs, waitedNs int64)
TEXT ·ioStart(SB), NOSPLIT|NOFRAME, $0-48
	NOP5
	RET

// func ioDone(vol string, reactor int, key uint64, arrivalNs, status int64)
TEXT ·ioDone(SB), NOSPLIT|NOFRAME, $0-48
	NOP5
	RET

// func replSend(vol, partner string, seq uint64)
TEXT ·replSend(SB), NOSPLIT|NOFRAME, $0-40
	NOP5
	RET

// func replAck(vol, partner string, seq uint64)
TEXT ·replAck(SB), NOSPLIT|NOFRAME, $0-40
	NOP5
	RET

// func journalEnqueue(vol string, seq uint64)
TEXT ·journalEnqueue(SB), NOSPLIT|NOFRAME, $0-24
	NOP5
	RET

// func journalDequeue(vol string, seq uint64)
TEXT ·journalDequeue(SB), NOSPLIT|NOFRAME, $0-24
	NOP5
	RET

// func stubPCs(pcs *[6]uintptr)
// The stubs' own addresses (not the ABI wrappers'), in the order of Sites, so that a
// test can check their first bytes in a binary without a symbol table.
TEXT ·stubPCs(SB), NOSPLIT, $0-8
	MOVQ pcs+0(FP), DI
	MOVQ $·ioStart(SB), AX
	MOVQ AX, 0(DI)
	MOVQ $·ioDone(SB), AX
	MOVQ AX, 8(DI)
	MOVQ $·replSend(SB), AX
	MOVQ AX, 16(DI)
	MOVQ $·replAck(SB), AX
	MOVQ AX, 24(DI)
	MOVQ $·journalEnqueue(SB), AX
	MOVQ AX, 32(DI)
	MOVQ $·journalDequeue(SB), AX
	MOVQ AX, 40(DI)
	RET
