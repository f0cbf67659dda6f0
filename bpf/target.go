package bpf

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"sluice/engine/probe"
)

// ErrNoProbes is returned for a process whose binary has no sluice probe sites (not
// sluice, or a build whose symbol table was stripped with -s).
var ErrNoProbes = errors.New("no sluice probe sites in the binary")

// target is a process to trace: its executable and where the probe state is, in the
// file (for the kernel's ref_ctr_offset) and in the process (for /proc/PID/mem).
type target struct {
	pid       int
	exe       string // /proc/PID/exe: the kernel resolves it to the binary's inode
	stateOff  uint64 // file offset of probe.StateSymbol
	stateAddr uint64 // its virtual address in the process
}

func openTarget(pid int) (*target, error) {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("open binary of pid %d: %w", pid, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w (%v)", pid, ErrNoProbes, err)
	}
	have := make(map[string]elf.Symbol, len(syms))
	for _, s := range syms {
		if strings.HasPrefix(s.Name, probe.SiteSymbolPrefix) {
			have[s.Name] = s
		}
	}
	state, ok := have[probe.StateSymbol]
	if !ok {
		return nil, fmt.Errorf("pid %d: %w (no %s)", pid, ErrNoProbes, probe.StateSymbol)
	}
	for _, site := range probe.Sites {
		if _, ok := have[site.Symbol]; !ok {
			return nil, fmt.Errorf("pid %d: %w (no %s)", pid, ErrNoProbes, site.Symbol)
		}
	}
	if int(state.Section) >= len(f.Sections) {
		return nil, fmt.Errorf("pid %d: %s has no section", pid, probe.StateSymbol)
	}
	sec := f.Sections[state.Section]
	if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_WRITE == 0 {
		// In .bss the kernel could not find it in the file for ref_ctr_offset.
		return nil, fmt.Errorf("pid %d: %s is in %s, not file-backed data", pid, probe.StateSymbol, sec.Name)
	}
	t := &target{pid: pid, exe: exe, stateOff: sec.Offset + state.Value - sec.Addr}
	if t.stateAddr, err = fileAddr(pid, exe, t.stateOff); err != nil {
		return nil, err
	}
	var b [probe.StateSize]byte
	if err := t.read(0, b[:]); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if m, v := le.Uint32(b[probe.OffsetMagic:]), le.Uint32(b[probe.OffsetVersion:]); m != probe.StateMagic || v != probe.StateVersion {
		return nil, fmt.Errorf("pid %d: probe state magic %#x version %d, want %#x version %d",
			pid, m, v, probe.StateMagic, probe.StateVersion)
	}
	return t, nil
}

// fileAddr maps a file offset of pid's executable to its address in the process, from
// /proc/PID/maps (a PIE binary is mapped anywhere; an ordinary Go binary at its link
// address).
func fileAddr(pid int, exe string, off uint64) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", exe, err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		ino, _ := strconv.ParseUint(fs[4], 10, 64)
		if ino != st.Ino {
			continue
		}
		bounds := strings.SplitN(fs[0], "-", 2)
		start, err1 := strconv.ParseUint(bounds[0], 16, 64)
		end, err2 := strconv.ParseUint(bounds[1], 16, 64)
		mapOff, err3 := strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if off >= mapOff && off < mapOff+(end-start) {
			return start + off - mapOff, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("pid %d: file offset %#x of its binary is not mapped", pid, off)
}

func (t *target) read(off uint64, b []byte) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", t.pid))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(b, int64(t.stateAddr+off)); err != nil {
		return fmt.Errorf("read probe state of pid %d: %w", t.pid, err)
	}
	return nil
}

func (t *target) write(off uint64, b []byte) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", t.pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(t.stateAddr+off)); err != nil {
		return fmt.Errorf("write probe state of pid %d: %w", t.pid, err)
	}
	return nil
}

// Semaphores reads the I/O and replication semaphores of a sluice process: the number
// of uprobes the kernel holds on each group's sites (0 when nobody traces it).
func Semaphores(pid int) (io, repl uint16, err error) {
	t, err := openTarget(pid)
	if err != nil {
		return 0, 0, err
	}
	var b [4]byte
	if err := t.read(probe.OffsetIOSem, b[:]); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint16(b[0:]), binary.LittleEndian.Uint16(b[2:]), nil
}

// threshold is the sampling threshold for 1 in n: a hash's high half at most this.
func threshold(n uint32) uint32 {
	if n <= 1 {
		return ^uint32(0)
	}
	return uint32((uint64(1)<<32)/uint64(n)) - 1
}
