package probe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"reflect"
	"runtime"
	"testing"
)

// nop5 is the instruction every stub must begin with: the kernel optimises a uprobe on
// it (and only on it) into a cheap hit.
var nop5 = []byte{0x0f, 0x1f, 0x44, 0x00, 0x00}

func selfELF(t *testing.T) *elf.File {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sectionAt is the allocated section holding virtual address a. go test strips the
// symbol table but keeps the section headers, so a test binary still answers this.
func sectionAt(f *elf.File, a uint64) *elf.Section {
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && a >= s.Addr && a < s.Addr+s.Size {
			return s
		}
	}
	return nil
}

// TestStubsBeginWithNOP5 reads the test binary's own file at each stub's address: NOP5,
// then RET. (The ELF symbols are checked in sluice/bpf, on a binary that keeps them.)
func TestStubsBeginWithNOP5(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("stubs exist on amd64 only")
	}
	f := selfELF(t)
	var pcs [6]uintptr
	stubPCs(&pcs)
	if len(pcs) != len(Sites) {
		t.Fatalf("%d stub addresses for %d sites", len(pcs), len(Sites))
	}
	for i, pc := range pcs {
		sec := sectionAt(f, uint64(pc))
		if sec == nil || sec.Name != ".text" {
			t.Fatalf("%s at %#x is not in .text", Sites[i].Name, pc)
		}
		code := make([]byte, 6)
		if _, err := sec.ReadAt(code, int64(uint64(pc)-sec.Addr)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(code[:5], nop5) || code[5] != 0xc3 {
			t.Errorf("%s begins % x, want NOP5 then RET", Sites[i].Name, code)
		}
	}
}

// TestStateLayout checks the ABI a tracer relies on: the offsets of the fields of
// `sites`, and that it lives in file-backed data (not .bss), where the kernel's
// ref_ctr_offset can find it, with its initial values in the file.
func TestStateLayout(t *testing.T) {
	typ := reflect.TypeOf(state{})
	want := map[string]uintptr{"magic": OffsetMagic, "version": OffsetVersion, "ioSem": OffsetIOSem,
		"replSem": OffsetReplSem, "ioThresh": OffsetIOThresh, "replThresh": OffsetReplThresh}
	for name, off := range want {
		fl, ok := typ.FieldByName(name)
		if !ok || fl.Offset != off {
			t.Errorf("field %s at %d, want %d", name, fl.Offset, off)
		}
	}
	if typ.Size() != StateSize {
		t.Errorf("state is %d bytes, want %d", typ.Size(), StateSize)
	}
	f := selfELF(t)
	addr := uint64(reflect.ValueOf(&sites).Pointer())
	sec := sectionAt(f, addr)
	if sec == nil || sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_WRITE == 0 {
		t.Fatalf("sites at %#x is not in a writable PROGBITS section (%v)", addr, sec)
	}
	b := make([]byte, StateSize)
	if _, err := sec.ReadAt(b, int64(addr-sec.Addr)); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[OffsetMagic:]) != StateMagic || le.Uint32(b[OffsetVersion:]) != StateVersion {
		t.Errorf("magic/version in the file: % x", b[OffsetMagic:OffsetMagic+8])
	}
	if le.Uint16(b[OffsetIOSem:]) != 0 || le.Uint32(b[OffsetIOThresh:]) != ^uint32(0) {
		t.Errorf("initial semaphore/threshold in the file: % x", b[OffsetIOSem:OffsetIOThresh+4])
	}
}
