package bdev

import (
	"fmt"
	"strings"
	"sync/atomic"

	"sluice/engine/reactor"
)

// ErrorParams are bdev_error_create's parameters: the error bdev over base_name is
// called "EE_" + base_name, as in SPDK.
type ErrorParams struct {
	BaseName string `json:"base_name" rpc:"required"`
	UUID     string `json:"uuid,omitempty"`
}

// InjectParams are bdev_error_inject_error's parameters (SPDK's names). The next Num
// I/Os of IOType fail as ErrorType says: "failure" completes them with an I/O error
// (EIO) without reaching the base, "nomem" with a transient lack of resources, and
// "corrupt_data" lets them reach the base and then flips the byte at CorruptOffset
// of the data (after a read completes, before a write is submitted) with CorruptValue.
// Num 0 clears the injection for IOType.
type InjectParams struct {
	Name          string `json:"name" rpc:"required"`
	IOType        string `json:"io_type" rpc:"required"`
	ErrorType     string `json:"error_type" rpc:"required"`
	Num           uint32 `json:"num"`
	CorruptOffset uint64 `json:"corrupt_offset,omitempty"`
	CorruptValue  uint8  `json:"corrupt_value,omitempty"`
}

type injectKind uint8

const (
	injectFailure injectKind = iota + 1
	injectNoMem
	injectCorrupt
)

// injection is one I/O type's armed fault: shared by every reactor's channel, so its
// fields are atomics; the count decides which I/Os take it.
type injection struct {
	left   atomic.Int64
	kind   atomic.Uint32
	offset atomic.Uint64
	value  atomic.Uint32
}

// CreateError registers "EE_"+p.BaseName over p.BaseName, which it claims.
func CreateError(m *Manager, p ErrorParams) (*Bdev, error) {
	name := "EE_" + p.BaseName
	u, err := parseOptionalUUID(p.UUID)
	if err != nil {
		return nil, fmt.Errorf("bdev_error_create %q: %w", name, err)
	}
	if u == ([16]byte{}) {
		u = DeriveUUID("error", name)
	}
	lb, err := ClaimBase(m, "error", name, p.BaseName)
	if err != nil {
		return nil, fmt.Errorf("bdev_error_create %q: %w", name, err)
	}
	b, err := m.Register(lb.LayerConfig(name, "error", u, p), &errorBackend{base: lb, name: name})
	if err != nil {
		return nil, fmt.Errorf("bdev_error_create %q: %w", name, err)
	}
	return b, nil
}

// InjectError arms (or with Num 0 disarms) a fault on an error bdev.
func InjectError(m *Manager, p InjectParams) error {
	b, err := m.Get(p.Name)
	if err != nil {
		return err
	}
	be, ok := b.backend.(*errorBackend)
	if !ok {
		return fmt.Errorf("bdev %q is a %s bdev, not an error bdev: %w", p.Name, b.Module(), ErrInvalid)
	}
	var kind injectKind
	switch p.ErrorType {
	case "failure":
		kind = injectFailure
	case "nomem":
		kind = injectNoMem
	case "corrupt_data":
		kind = injectCorrupt
	default:
		return fmt.Errorf("error_type %q: want failure, nomem or corrupt_data: %w", p.ErrorType, ErrInvalid)
	}
	types, err := parseIOTypes(p.IOType)
	if err != nil {
		return err
	}
	for _, t := range types {
		in := &be.inject[t]
		in.left.Store(0)
		in.kind.Store(uint32(kind))
		in.offset.Store(p.CorruptOffset)
		in.value.Store(uint32(p.CorruptValue))
		in.left.Store(int64(p.Num))
	}
	return nil
}

func parseIOTypes(s string) ([]IOType, error) {
	if s == "all" {
		return []IOType{IORead, IOWrite, IOFlush, IOWriteZeroes, IOUnmap}, nil
	}
	for t := IORead; t < numIOTypes; t++ {
		if strings.EqualFold(s, t.String()) {
			return []IOType{t}, nil
		}
	}
	return nil, fmt.Errorf("io_type %q: want read, write, flush, write_zeroes, unmap or all: %w", s, ErrInvalid)
}

type errorBackend struct {
	base   LayerBase
	name   string
	inject [numIOTypes]injection
}

func (be *errorBackend) NewChannel(r *reactor.Reactor) (BackendChannel, error) {
	lc, err := openLayerChannel(be.base, r)
	if err != nil {
		return nil, err
	}
	c := &errorChannel{layerChannel: lc, be: be}
	c.pool = NewPool(64, c.newIO)
	return c, nil
}

func (be *errorBackend) Close() error {
	be.base.Release()
	return nil
}

// take claims one injected fault for an I/O of type t, if any is armed.
func (be *errorBackend) take(t IOType) (injectKind, *injection) {
	in := &be.inject[t]
	if in.left.Load() <= 0 {
		return 0, nil
	}
	if in.left.Add(-1) < 0 {
		in.left.Store(0)
		return 0, nil
	}
	return injectKind(in.kind.Load()), in
}

type errorIO struct {
	ChildIO
	c       *errorChannel
	corrupt *injection
}

type errorChannel struct {
	layerChannel
	be   *errorBackend
	pool *Pool[errorIO]
}

func (c *errorChannel) newIO() *errorIO {
	e := &errorIO{c: c}
	e.Child.Done = e.baseDone
	return e
}

func (c *errorChannel) Submit(io *IO) {
	kind, in := c.be.take(io.Type)
	switch kind {
	case injectFailure:
		io.Errno = 5 // EIO, as a failed medium reports it
		io.Complete(StatusIOError)
		return
	case injectNoMem:
		io.Complete(StatusNoMemory)
		return
	}
	e := c.pool.Get()
	e.Prepare(io)
	e.corrupt = nil
	if kind == injectCorrupt {
		e.corrupt = in
		if io.Type == IOWrite {
			corruptBuf(io.Buf, in)
			e.corrupt = nil
		}
	}
	c.base.Submit(&e.Child)
}

func (e *errorIO) baseDone(*IO) {
	if e.corrupt != nil && e.Child.Type == IORead && e.Child.Status == StatusSuccess {
		corruptBuf(e.Child.Buf, e.corrupt)
	}
	e.corrupt = nil
	p := e.Detach()
	e.c.pool.Put(e)
	p.Complete(p.Status)
}

func corruptBuf(b []byte, in *injection) {
	if off := in.offset.Load(); off < uint64(len(b)) {
		b[off] = byte(in.value.Load())
	}
}

func (c *errorChannel) Close() { c.base.Put() }
