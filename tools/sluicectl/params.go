package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// parseParams turns the arguments after the method into the call's params:
//
//	key=value        a member; value is JSON if it parses as JSON (64, true, null, "x",
//	                 [1,2], {"a":1}), else the literal string (Malloc0, 10.0.0.1:4420)
//	key.sub=value    a member of a nested object, created as needed
//	--json '{...}'   a whole params object (or array) to start from; key=value
//	                 arguments are applied on top of it, the last one winning
//
// No arguments mean no params (nil). To pass a string that looks like JSON, quote it as
// JSON: name='"123"'.
func parseParams(args []string) (json.RawMessage, error) {
	var base json.RawMessage
	var sets [][2]string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--json" || a == "-json":
			if i+1 == len(args) {
				return nil, fmt.Errorf("%s needs a value", a)
			}
			i++
			base = json.RawMessage(args[i])
		case strings.HasPrefix(a, "--json=") || strings.HasPrefix(a, "-json="):
			_, v, _ := strings.Cut(a, "=")
			base = json.RawMessage(v)
		case strings.HasPrefix(a, "-"):
			return nil, fmt.Errorf("unknown option %q after the method (global flags go before it)", a)
		default:
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("argument %q: want key=value or --json '{...}'", a)
			}
			sets = append(sets, [2]string{k, v})
		}
	}
	if base != nil && !json.Valid(base) {
		return nil, fmt.Errorf("--json: not valid JSON: %s", base)
	}
	if len(sets) == 0 {
		return base, nil
	}
	root := map[string]any{}
	if base != nil {
		if err := decodeObject(base, &root); err != nil {
			return nil, fmt.Errorf("--json: %w", err)
		}
	}
	for _, kv := range sets {
		if err := setPath(root, kv[0], parseValue(kv[1])); err != nil {
			return nil, err
		}
	}
	return json.Marshal(root)
}

// decodeObject decodes a JSON object keeping numbers exact (json.Number), so that a large
// integer from --json is not rounded through float64.
func decodeObject(raw json.RawMessage, into *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil || *into == nil {
		return fmt.Errorf("key=value arguments need --json to be an object")
	}
	return nil
}

// parseValue reads value as JSON when it is valid JSON, else as a string.
func parseValue(value string) any {
	if json.Valid([]byte(value)) {
		return json.RawMessage(value)
	}
	return value
}

// setPath sets root[a][b][c] = v for key "a.b.c", creating objects on the way.
func setPath(root map[string]any, key string, v any) error {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("key %q: empty component", key)
		}
	}
	m := root
	for i, p := range parts[:len(parts)-1] {
		next, ok := m[p]
		if !ok {
			child := map[string]any{}
			m[p] = child
			m = child
			continue
		}
		child, err := asObject(next)
		if err != nil {
			return fmt.Errorf("key %q: %s is not an object", key, strings.Join(parts[:i+1], "."))
		}
		m[p] = child
		m = child
	}
	m[parts[len(parts)-1]] = v
	return nil
}

// asObject returns v as a map: v is a map already, or a JSON object given as a value.
func asObject(v any) (map[string]any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case json.RawMessage:
		var m map[string]any
		if err := decodeObject(x, &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("not an object")
}
