package rpc

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Strict parameter decoding for Handle.
//
// encoding/json ignores unknown object members and matches member names without regard to
// case. A management plane should not: a mistyped "nmae" would silently create a bdev with
// no name. Before json.Unmarshal runs, check walks the raw params beside a schema compiled
// from the parameter type and rejects members that no field names exactly, and required
// fields (tag `rpc:"required"`) that are absent or null. Both errors name the member by its
// path, e.g. `unknown field "namespaces[1].nsd"`.

// maxParamsDepth bounds the recursion of check; deeper params are rejected rather than
// walked. encoding/json itself stops at 10000 levels.
const maxParamsDepth = 64

type schemaKind uint8

const (
	schemaLeaf   schemaKind = iota // decoded by encoding/json as is
	schemaStruct                   // a JSON object with a fixed set of members
	schemaList                     // a JSON array of elem
	schemaMap                      // a JSON object with arbitrary members of elem
)

type schema struct {
	kind schemaKind
	// basic is the reflect.Kind of a leaf whose JSON type check verifies (string, bool,
	// integers, floats); reflect.Invalid for leaves left to encoding/json alone.
	basic    reflect.Kind
	fields   map[string]*schema // schemaStruct: exact JSON member name → its schema
	required []string           // schemaStruct: member names tagged rpc:"required", sorted
	elem     *schema            // schemaList, schemaMap
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

// schemaCache holds one schema per type; compiled schemas are immutable.
var schemaCache sync.Map // reflect.Type → *schema

func schemaFor(t reflect.Type) *schema {
	if s, ok := schemaCache.Load(t); ok {
		return s.(*schema)
	}
	s := compileSchema(t, map[reflect.Type]*schema{})
	actual, _ := schemaCache.LoadOrStore(t, s)
	return actual.(*schema)
}

// compileSchema builds the schema of t. seen breaks cycles in recursive types: a type met
// again while it is being compiled reuses the schema under construction.
func compileSchema(t reflect.Type, seen map[reflect.Type]*schema) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := seen[t]; ok {
		return s
	}
	if t == rawMessageType || t.Implements(jsonUnmarshaler) ||
		reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return &schema{kind: schemaLeaf}
	}
	s := &schema{kind: schemaLeaf}
	seen[t] = s
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		s.basic = t.Kind()
	case reflect.Struct:
		s.kind = schemaStruct
		s.fields = map[string]*schema{}
		addStructFields(s, t, seen, 0)
		sort.Strings(s.required)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return s // []byte is a base64 string
		}
		s.kind = schemaList
		s.elem = compileSchema(t.Elem(), seen)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return s
		}
		s.kind = schemaMap
		s.elem = compileSchema(t.Elem(), seen)
	}
	return s
}

// addStructFields adds the JSON members of struct t to s, following encoding/json's naming
// (json tag name, else the Go field name; "-" skips; untagged embedded structs promote
// their fields; a shallower field wins over a promoted one).
func addStructFields(s *schema, t reflect.Type, seen map[reflect.Type]*schema, depth int) {
	if depth > maxParamsDepth {
		panic(fmt.Sprintf("rpc: params type %v: embedding too deep", t))
	}
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			embedded = append(embedded, ft)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := s.fields[name]; dup {
			continue
		}
		if hasOption(opts, "string") {
			s.fields[name] = &schema{kind: schemaLeaf} // a number or bool quoted as a string
		} else {
			s.fields[name] = compileSchema(f.Type, seen)
		}
		if f.Tag.Get("rpc") == "required" {
			s.required = append(s.required, name)
		}
	}
	for _, et := range embedded {
		addStructFields(s, et, seen, depth+1)
	}
}

// check validates raw against s; path names the position of raw for error messages.
// Errors encoding/json would also find are reported here too, but with the full path.
func (s *schema) check(raw json.RawMessage, path string, depth int) error {
	if isNull(raw) {
		return nil // encoding/json leaves the zero value; required fields are checked above
	}
	if depth > maxParamsDepth {
		return fmt.Errorf("field %q: nested deeper than %d levels", path, maxParamsDepth)
	}
	switch s.kind {
	case schemaLeaf:
		return s.checkBasic(raw, path)
	case schemaStruct:
		return s.checkStruct(raw, path, depth)
	case schemaList:
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return mismatch(path, "array", raw)
		}
		for i, e := range elems {
			if err := s.elem.check(e, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	case schemaMap:
		var members map[string]json.RawMessage
		if json.Unmarshal(raw, &members) != nil {
			return mismatch(path, "object", raw)
		}
		for _, k := range sortedKeys(members) {
			if err := s.elem.check(members[k], joinPath(path, k), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkBasic checks that raw (not null) has the JSON type of a basic leaf and, for
// numbers, fits it.
func (s *schema) checkBasic(raw json.RawMessage, path string) error {
	text := string(trimJSONSpace(raw))
	var err error
	switch s.basic {
	case reflect.Invalid:
		return nil
	case reflect.String:
		if firstByte(raw) != '"' {
			return mismatch(path, "string", raw)
		}
		return nil
	case reflect.Bool:
		if text != "true" && text != "false" {
			return mismatch(path, "bool", raw)
		}
		return nil
	case reflect.Float32:
		_, err = strconv.ParseFloat(text, 32)
	case reflect.Float64:
		_, err = strconv.ParseFloat(text, 64)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err = strconv.ParseInt(text, 10, bitSize(s.basic))
	default:
		_, err = strconv.ParseUint(text, 10, bitSize(s.basic))
	}
	if err != nil {
		return mismatch(path, s.basic.String(), raw)
	}
	return nil
}

func bitSize(k reflect.Kind) int {
	switch k {
	case reflect.Int8, reflect.Uint8:
		return 8
	case reflect.Int16, reflect.Uint16:
		return 16
	case reflect.Int32, reflect.Uint32:
		return 32
	}
	return 64
}

// mismatch reports raw where a value of type want was expected: the number itself when it
// is a number (it may be out of range), else its JSON type.
func mismatch(path, want string, raw json.RawMessage) error {
	got := "number " + string(trimJSONSpace(raw))
	switch c := firstByte(raw); {
	case c == '"':
		got = "string"
	case c == '{':
		got = "object"
	case c == '[':
		got = "array"
	case c == 't' || c == 'f':
		got = "bool"
	}
	if len(got) > 48 {
		got = got[:48] + "..."
	}
	if path == "" {
		return fmt.Errorf("want %s, got %s", want, got)
	}
	return fmt.Errorf("field %q: want %s, got %s", path, want, got)
}

func hasOption(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

func (s *schema) checkStruct(raw json.RawMessage, path string, depth int) error {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return mismatch(path, "object", raw)
	}
	keys := sortedKeys(members)
	for _, k := range keys {
		if _, ok := s.fields[k]; !ok {
			return fmt.Errorf("unknown field %q", joinPath(path, k))
		}
	}
	for _, r := range s.required {
		if v, ok := members[r]; !ok || isNull(v) {
			return fmt.Errorf("missing required field %q", joinPath(path, r))
		}
	}
	for _, k := range keys {
		if err := s.fields[k].check(members[k], joinPath(path, k), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// validator is implemented by parameter types that check relations between fields after
// decoding; its error is answered with -32602.
type validator interface {
	Validate() error
}

// decodeParams decodes raw (absent, null, or a JSON value) into a P strictly. Errors are
// *Error with CodeInvalidParams and a message naming the offending member.
func decodeParams[P any](s *schema, raw json.RawMessage) (P, error) {
	var p P
	if len(raw) == 0 || isNull(raw) {
		if s.kind == schemaStruct && len(s.required) > 0 {
			return p, errorf(CodeInvalidParams,
				"invalid params: missing params (required: %s)", strings.Join(s.required, ", "))
		}
		return p, validate(&p)
	}
	if s.kind == schemaStruct && firstByte(raw) != '{' {
		return p, errorf(CodeInvalidParams, "invalid params: params must be an object")
	}
	if err := s.check(raw, "", 0); err != nil {
		return p, errorf(CodeInvalidParams, "invalid params: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var zero P
		return zero, errorf(CodeInvalidParams, "invalid params: %s", describeJSONError(err))
	}
	return p, validate(&p)
}

func validate[P any](p *P) error {
	v, ok := any(p).(validator)
	if !ok {
		return nil
	}
	if err := v.Validate(); err != nil {
		return errorf(CodeInvalidParams, "invalid params: %v", err)
	}
	return nil
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("cannot use %s as %v", te.Value, te.Type)
		}
		return fmt.Sprintf("field %q: cannot use %s as %v", te.Field, te.Value, te.Type)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(raw json.RawMessage) bool {
	return string(trimJSONSpace(raw)) == "null"
}

// trimJSONSpace trims the four whitespace bytes of JSON (RFC 8259 section 2), not the
// wider set of bytes.TrimSpace.
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

func firstByte(raw json.RawMessage) byte {
	raw = trimJSONSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
