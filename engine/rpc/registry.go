package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sort"
	"sync"
)

// maxNameLen bounds method and config section names.
const maxNameLen = 128

// RawHandler serves one method from its raw params: absent (nil), or the JSON object or
// array the client sent. The result is marshalled with encoding/json (a json.RawMessage
// result is sent as is). An error is mapped to a JSON-RPC error object by AsError.
type RawHandler func(ctx context.Context, params json.RawMessage) (any, error)

type method struct {
	call RawHandler
	// check validates params without running the method (LoadConfig's first pass);
	// nil for raw handlers, whose params are only checked for shape.
	check func(params json.RawMessage) error
}

type section struct {
	name  string
	order int
	dump  func() ([]Call, error)
}

// RegistryOptions configures NewRegistry. The zero value is usable.
type RegistryOptions struct {
	// Version is the product version that sluice_get_version reports, e.g. "v0.3.1-pre".
	Version string
	// Logger receives handler panics and failed notifications; nil means slog.Default().
	Logger *slog.Logger
}

// Registry is the table of RPC methods and config sections. Modules register their methods
// beside themselves (bdev registers bdev_*, nvmf registers nvmf_*), normally from the
// daemon's wiring before the server starts. Registration errors are programmer errors and
// panic. A Registry is safe for concurrent use: methods may be called from several
// connections at once while others are registered.
type Registry struct {
	version string
	log     *slog.Logger
	// writeFile stores save_config's file; tests replace it so that no file is written.
	writeFile func(path string, data []byte) error

	mu sync.RWMutex
	// +checklocks:mu
	methods map[string]*method
	// +checklocks:mu
	sections map[string]*section
}

// NewRegistry returns a registry holding the built-in methods rpc_get_methods,
// sluice_get_version and save_config.
func NewRegistry(opts RegistryOptions) *Registry {
	r := &Registry{
		version:   opts.Version,
		log:       opts.Logger,
		writeFile: writeFileAtomic,
		methods:   map[string]*method{},
		sections:  map[string]*section{},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	registerBuiltins(r)
	return r
}

// Handle registers method name, whose params decode strictly into P and whose result R is
// marshalled with encoding/json. Params must be a JSON object when P is a struct; members
// that match no field (exactly, case included) and required fields (tag `rpc:"required"`)
// that are absent or null are answered with -32602 naming the member. If *P has a
// Validate() error method it runs after decoding, and its error is also -32602.
//
// fn runs on a server goroutine (the control plane), never on a reactor. If it touches
// reactor-owned state it must send a message to the owning reactor and wait for the
// reply, honouring ctx.
//
// Handle panics if name is not object_verb snake_case or is already registered: both are
// programmer errors, found at start.
func Handle[P, R any](reg *Registry, name string, fn func(ctx context.Context, p P) (R, error)) {
	s := schemaFor(reflect.TypeFor[P]())
	reg.add(name, &method{
		call: func(ctx context.Context, raw json.RawMessage) (any, error) {
			p, err := decodeParams[P](s, raw)
			if err != nil {
				return nil, err
			}
			return fn(ctx, p)
		},
		check: func(raw json.RawMessage) error {
			_, err := decodeParams[P](s, raw)
			return err
		},
	})
}

// HandleRaw registers method name with a handler that decodes its own params. The same
// rules as Handle apply to the name and to where fn runs.
func (r *Registry) HandleRaw(name string, fn RawHandler) {
	if fn == nil {
		panic(fmt.Sprintf("rpc: method %q: nil handler", name))
	}
	r.add(name, &method{call: fn})
}

func (r *Registry) add(name string, m *method) {
	if err := checkMethodName(name); err != nil {
		panic("rpc: " + err.Error())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.methods[name]; dup {
		panic(fmt.Sprintf("rpc: method %q registered twice", name))
	}
	r.methods[name] = m
}

// Methods returns the registered method names, sorted.
func (r *Registry) Methods() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.methods)
}

func (r *Registry) lookup(name string) *method {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.methods[name]
}

// Invoke runs method name in process, as if a client had called it, and returns its result
// marshalled. Errors are the handler's own (so errors.Is works on module sentinels), or an
// *Error for an unknown method (-32601), bad params (-32602) or a recovered panic (-32603).
// Tests and LoadConfig use it; it is safe for concurrent use.
func (r *Registry) Invoke(
	ctx context.Context, name string, params json.RawMessage,
) (json.RawMessage, error) {
	m := r.lookup(name)
	if m == nil {
		return nil, errorf(CodeMethodNotFound, "method not found: %s", name)
	}
	if err := checkParamsShape(params); err != nil {
		return nil, err
	}
	if isNull(params) {
		params = nil // as serveRequest does: handlers see absent params as nil
	}
	res, err := r.run(ctx, name, m, params)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, errorf(CodeInternalError, "internal error: method %s: encode result: %v", name, err)
	}
	return out, nil
}

// run calls the handler; it is the RPC boundary, the one place in the engine that
// recovers panics (DESIGN.md, error handling rule 3). A control-plane handler that panics
// has not touched reactor-owned state directly, so the daemon can keep serving.
func (r *Registry) run(
	ctx context.Context, name string, m *method, params json.RawMessage,
) (res any, err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("rpc handler panicked", "method", name, "panic", v,
				"stack", string(debug.Stack()))
			res, err = nil, errorf(CodeInternalError, "internal error: method %s panicked: %v", name, v)
		}
	}()
	return m.call(ctx, params)
}

// checkParamsShape enforces JSON-RPC 2.0 section 4.2: params, if present, is an object or
// an array. null is accepted as "absent", as many clients send it.
func checkParamsShape(params json.RawMessage) error {
	if len(params) == 0 || isNull(params) {
		return nil
	}
	switch firstByte(params) {
	case '{', '[':
		return nil
	}
	return errorf(CodeInvalidParams, "invalid params: params must be an object or an array")
}

// checkMethodName enforces object_verb snake_case: lowercase ASCII words of letters and
// digits joined by single underscores, at least two words, starting with a letter.
func checkMethodName(name string) error {
	if err := checkSnake(name); err != nil {
		return fmt.Errorf("method name %q: %w", name, err)
	}
	for i := range len(name) {
		if name[i] == '_' {
			return nil
		}
	}
	return fmt.Errorf("method name %q: want object_verb, e.g. bdev_malloc_create", name)
}

func checkSnake(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("length must be 1 to %d", maxNameLen)
	}
	if name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("must start with a lowercase letter")
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '_':
			if i == len(name)-1 || name[i+1] == '_' {
				return fmt.Errorf("underscores must separate words")
			}
		default:
			return fmt.Errorf("invalid character %q (want a-z, 0-9, _)", c)
		}
	}
	return nil
}

// RegisterConfigSection registers the config section (SPDK's "subsystem") name. dump
// returns the calls that recreate the module's live state, in the order they must be
// replayed; it runs on a server goroutine and, like any handler, reaches reactor-owned
// state only by message. order sorts sections on save and replay (lower first; bdev
// before nvmf, say); ties sort by name. It panics on a malformed or duplicate name.
func (r *Registry) RegisterConfigSection(name string, order int, dump func() ([]Call, error)) {
	if err := checkSnake(name); err != nil {
		panic(fmt.Sprintf("rpc: config section name %q: %v", name, err))
	}
	if dump == nil {
		panic(fmt.Sprintf("rpc: config section %q: nil dump", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sections[name]; dup {
		panic(fmt.Sprintf("rpc: config section %q registered twice", name))
	}
	r.sections[name] = &section{name: name, order: order, dump: dump}
}

// orderedSections returns the registered sections in replay order.
func (r *Registry) orderedSections() []*section {
	r.mu.RLock()
	out := make([]*section, 0, len(r.sections))
	for _, s := range r.sections {
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].order != out[j].order {
			return out[i].order < out[j].order
		}
		return out[i].name < out[j].name
	})
	return out
}
