package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckMethodName(t *testing.T) {
	for _, name := range []string{"bdev_malloc_create", "nvmf_create_subsystem",
		"framework_get_reactors", "save_config", "bdev_nvme_attach_controller", "iscsi_create_portal_group", "a_1"} {
		if err := checkMethodName(name); err != nil {
			t.Errorf("checkMethodName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "bdev", "Bdev_create", "bdev__create", "bdev_create_",
		"_bdev_create", "bdev-create", "bdev.create", "1bdev_create", "bdev_créer",
		strings.Repeat("a_", 65)} {
		if err := checkMethodName(name); err == nil {
			t.Errorf("checkMethodName(%q) = nil, want an error", name)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	noop := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	dump := func() ([]Call, error) { return nil, nil }
	for _, tt := range []struct {
		name string
		fn   func(r *Registry)
		want string
	}{
		{"bad name", func(r *Registry) { r.HandleRaw("BdevCreate", noop) }, `method name "BdevCreate"`},
		{"one word", func(r *Registry) { r.HandleRaw("bdev", noop) }, "want object_verb"},
		{"duplicate", func(r *Registry) {
			r.HandleRaw("test_dup", noop)
			r.HandleRaw("test_dup", noop)
		}, `method "test_dup" registered twice`},
		{"duplicate built-in", func(r *Registry) {
			Handle(r, "save_config", func(context.Context, struct{}) (any, error) { return nil, nil })
		}, `method "save_config" registered twice`},
		{"nil handler", func(r *Registry) { r.HandleRaw("test_nil", nil) }, "nil handler"},
		{"bad section", func(r *Registry) { r.RegisterConfigSection("Bdev", 0, dump) }, `config section name "Bdev"`},
		{"duplicate section", func(r *Registry) {
			r.RegisterConfigSection("bdev", 0, dump)
			r.RegisterConfigSection("bdev", 1, dump)
		}, `config section "bdev" registered twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				if v == nil || !strings.Contains(fmt.Sprint(v), tt.want) {
					t.Errorf("panic %v, want one containing %q", v, tt.want)
				}
			}()
			tt.fn(NewRegistry(RegistryOptions{Logger: quietLogger}))
		})
	}
}

type nested struct {
	Trtype string `json:"trtype" rpc:"required"`
	Traddr string `json:"traddr"`
}

type common struct {
	NQN string `json:"nqn" rpc:"required"`
}

type strictParams struct {
	common
	Listen    *nested           `json:"listen_address,omitempty"`
	Hosts     []nested          `json:"hosts,omitempty"`
	Opts      map[string]nested `json:"opts,omitempty"`
	Raw       json.RawMessage   `json:"raw,omitempty"`
	Timeout   duration          `json:"timeout,omitempty"`
	Bytes     []byte            `json:"bytes,omitempty"`
	Count     int               `json:"count"`
	Ignored   int               `json:"-"`
	GoName    int
	unexposed int // unexported: not a JSON member
}

var _ = strictParams{unexposed: 0}

// duration decodes itself, so check treats it as a leaf.
type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	d.Duration = v
	return err
}

type tree struct {
	Name     string `json:"name"`
	Children []tree `json:"children,omitempty"`
}

func TestDecodeParams(t *testing.T) {
	s := schemaFor(reflect.TypeFor[strictParams]())
	for _, tt := range []struct {
		in, err string
	}{
		{`{"nqn":"n"}`, ""},
		{`{"nqn":"n","listen_address":{"trtype":"tcp","traddr":"1.2.3.4"},"hosts":[{"trtype":"tcp"}],` +
			`"opts":{"a":{"trtype":"x"}},"raw":{"anything":[1]},"timeout":"1s","bytes":"AQI=","count":3,"GoName":1}`, ""},
		{``, `invalid params: missing params (required: nqn)`},
		{`null`, `invalid params: missing params (required: nqn)`},
		{`[]`, `invalid params: params must be an object`},
		{`{}`, `invalid params: missing required field "nqn"`},
		{`{"nqn":null}`, `invalid params: missing required field "nqn"`},
		{`{"NQN":"n"}`, `invalid params: unknown field "NQN"`},
		{`{"nqn":"n","Ignored":1}`, `invalid params: unknown field "Ignored"`},
		{`{"nqn":"n","unexposed":1}`, `invalid params: unknown field "unexposed"`},
		{`{"nqn":"n","listen_address":{"traddr":"x"}}`, `invalid params: missing required field "listen_address.trtype"`},
		{`{"nqn":"n","listen_address":{"trtype":"tcp","port":1}}`, `invalid params: unknown field "listen_address.port"`},
		{`{"nqn":"n","hosts":[{"trtype":"a"},{"trtype":"b","x":1}]}`, `invalid params: unknown field "hosts[1].x"`},
		{`{"nqn":"n","opts":{"k":{"y":1}}}`, `invalid params: unknown field "opts.k.y"`},
		{`{"nqn":1}`, `invalid params: field "nqn": want string, got number 1`},
		{`{"nqn":"n","hosts":[{"trtype":"a","traddr":5}]}`, `invalid params: field "hosts[0].traddr": want string, got number 5`},
		{`{"nqn":"n","count":"3"}`, `invalid params: field "count": want int, got string`},
		{`{"nqn":"n","count":1.5}`, `invalid params: field "count": want int, got number 1.5`},
		{`{"nqn":"n","count":1e30}`, `invalid params: field "count": want int, got number 1e30`},
		{`{"nqn":"n","count":null}`, ``},
		{`{"nqn":"n","hosts":{}}`, `invalid params: field "hosts": want array, got object`},
		{`{"nqn":"n","listen_address":[]}`, `invalid params: field "listen_address": want object, got array`},
		{`{"nqn":"n","opts":{"k":true}}`, `invalid params: field "opts.k": want object, got bool`},
		{`{"nqn":"n","bytes":"!"}`, `invalid params: illegal base64 data at input byte 0`},
		{`{"nqn":"n","timeout":"soon"}`, `invalid params: time: invalid duration "soon"`},
	} {
		_, err := decodeParams[strictParams](s, json.RawMessage(tt.in))
		got := ""
		if err != nil {
			got = err.Error()
			if AsError(err).Code != CodeInvalidParams {
				t.Errorf("decode %s: code %d, want -32602", tt.in, AsError(err).Code)
			}
		}
		want := tt.err
		if want != "" {
			want = fmt.Sprintf("error %d: %s", CodeInvalidParams, want)
		}
		if got != want {
			t.Errorf("decode %s:\n got %q\nwant %q", tt.in, got, want)
		}
	}
}

func TestDecodeParamsRecursiveType(t *testing.T) {
	s := schemaFor(reflect.TypeFor[tree]())
	in := `{"name":"a","children":[{"name":"b","children":[{"name":"c","kids":[]}]}]}`
	_, err := decodeParams[tree](s, json.RawMessage(in))
	if err == nil || !strings.Contains(err.Error(), `unknown field "children[0].children[0].kids"`) {
		t.Errorf("err = %v", err)
	}
	deep := strings.Repeat(`{"name":"x","children":[`, maxParamsDepth) + strings.Repeat(`]}`, maxParamsDepth)
	if _, err := decodeParams[tree](s, json.RawMessage(deep)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("deep params: err = %v, want a depth error", err)
	}
}

func TestDecodeParamsValidate(t *testing.T) {
	reg, _ := testRegistry(t)
	_, err := reg.Invoke(context.Background(), "bdev_fake_create",
		json.RawMessage(`{"name":"a","num_blocks":8,"block_size":100}`))
	want := "error -32602: invalid params: block_size 100 is not a multiple of 512"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAsError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("bdev %q: %w", "x", ErrNotFound), -19, `bdev "x": not found`},
		{fmt.Errorf("bdev %q: %w", "x", ErrExists), -17, `bdev "x": already exists`},
		{fmt.Errorf("open: %w", fs.ErrExist), -17, `open: file already exists`},
		{fmt.Errorf("size: %w", ErrInvalid), -22, `size: invalid argument`},
		{fmt.Errorf("claimed: %w", ErrBusy), -16, `claimed: busy`},
		{fmt.Errorf("x: %w", ErrInvalidParams), -32602, `x: invalid params`},
		{ErrInvalidState, -1, `invalid state`},
		{fmt.Errorf("open /x: %w", fs.ErrNotExist), -2, `open /x: file does not exist`},
		{fs.ErrPermission, -13, `permission denied`},
		{ErrAgain, -11, `try again`},
		{ErrNoMemory, -12, `out of memory`},
		{ErrNoSpace, -28, `no space left`},
		{errors.ErrUnsupported, -95, `unsupported operation`},
		{ErrNotSupported, -95, `not supported`},
		{fmt.Errorf("wait reactor: %w", context.DeadlineExceeded), -110, `wait reactor: context deadline exceeded`},
		{context.Canceled, -125, `context canceled`},
		{ErrCanceled, -125, `canceled`},
		{ErrTimeout, -110, `timed out`},
		{errors.Join(ErrBusy, ErrNotFound), -16, "busy\nnot found"}, // first in table wins
		{errors.New("other"), -32603, `other`},
		{&Error{Code: 7, Message: "seven"}, 7, "seven"},
	} {
		e := AsError(tt.err)
		if e.Code != tt.code || e.Message != tt.msg {
			t.Errorf("AsError(%v) = {%d %q}, want {%d %q}", tt.err, e.Code, e.Message, tt.code, tt.msg)
		}
		// The client side matches the sentinel back.
		if tt.code != CodeInternalError && tt.code != 7 {
			want := sentinelOf(tt.code)
			if !errors.Is(e, want) {
				t.Errorf("errors.Is(%v, %v) = false", e, want)
			}
		}
	}
	if AsError(nil) != nil {
		t.Error("AsError(nil) != nil")
	}
	if errors.Is(&Error{Code: -19}, ErrExists) || errors.Is(&Error{Code: -32603}, ErrNotFound) {
		t.Error("*Error matches a sentinel of another code")
	}
}

// TestCodeTableUnique guards the one-table rule: each code and each error appears once.
func TestCodeTableUnique(t *testing.T) {
	codes := map[int]bool{}
	errs := map[error]bool{}
	for _, e := range codeTable {
		if codes[e.code] {
			t.Errorf("code %d listed twice", e.code)
		}
		codes[e.code] = true
		for _, m := range e.match {
			if errs[m] {
				t.Errorf("error %v listed twice", m)
			}
			errs[m] = true
		}
	}
}

func sentinelOf(code int) error {
	for _, e := range codeTable {
		if e.code == code {
			return e.match[0]
		}
	}
	return nil
}
