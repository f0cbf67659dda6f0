package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Output formats of -o.
const (
	formatAuto  = "auto"  // a table for list-shaped results, indented JSON otherwise
	formatJSON  = "json"  // indented JSON always
	formatTable = "table" // a table for lists, KEY VALUE rows for an object
)

// summaryMax bounds the width of a summarised nested value in a table cell.
const summaryMax = 40

// printResult writes a method's result in format.
func printResult(w io.Writer, raw json.RawMessage, format string) error {
	v, err := decodeOrdered(raw)
	if err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	switch format {
	case formatAuto, formatTable:
		if rows, ok := listShaped(v); ok {
			return printTable(w, rows)
		}
		if obj, ok := v.(*object); ok && format == formatTable {
			return printKeyValues(w, obj)
		}
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("format result: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// listShaped reports whether v is a non-empty array of objects, the shape of
// bdev_get_bdevs or nvmf_get_subsystems, which reads best as a table.
func listShaped(v any) ([]*object, bool) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, false
	}
	rows := make([]*object, len(list))
	for i, e := range list {
		if rows[i], ok = e.(*object); !ok {
			return nil, false
		}
	}
	return rows, true
}

// printTable prints one row per object and one column per member, in the order members
// first appear; nested values are summarised (see cell).
func printTable(w io.Writer, rows []*object) error {
	var cols []string
	seen := map[string]bool{}
	for _, r := range rows {
		for _, k := range r.keys {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = strings.ToUpper(c)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	cells := make([]string, len(cols))
	for _, r := range rows {
		for i, c := range cols {
			v, ok := r.vals[c]
			if !ok {
				cells[i] = "-"
				continue
			}
			cells[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printKeyValues prints an object as KEY VALUE rows.
func printKeyValues(w io.Writer, obj *object) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, k := range obj.keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(obj.vals[k]))
	}
	return tw.Flush()
}

// cell renders a value for a table: scalars in full; an object of up to three scalar
// members as {k=v,...} and a list of scalars as a,b,c when short, else a count.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return `""`
		}
		return clean(x)
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		parts := make([]string, len(x))
		for i, e := range x {
			if !isScalar(e) {
				return "[" + count(len(x), "item") + "]"
			}
			parts[i] = cell(e)
		}
		if s := strings.Join(parts, ","); len(s) <= summaryMax {
			return s
		}
		return "[" + count(len(x), "item") + "]"
	case *object:
		if len(x.keys) <= 3 {
			parts := make([]string, len(x.keys))
			ok := true
			for i, k := range x.keys {
				ok = ok && isScalar(x.vals[k])
				parts[i] = k + "=" + cell(x.vals[k])
			}
			if s := "{" + strings.Join(parts, ",") + "}"; ok && len(s) <= summaryMax {
				return s
			}
		}
		return "{" + count(len(x.keys), "field") + "}"
	}
	return fmt.Sprint(v)
}

func isScalar(v any) bool {
	switch v.(type) {
	case []any, *object:
		return false
	}
	return true
}

// clean keeps a cell on one line and its columns aligned.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}

// count renders "1 item", "2 items".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// object is a JSON object that remembers its member order, so that table columns follow
// the order the server wrote (name first, as the method's result type declares it).
type object struct {
	keys []string
	vals map[string]any
}

// decodeOrdered decodes JSON into nil, bool, json.Number, string, []any and *object.
func decodeOrdered(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data after the result")
	}
	return v, nil
}

// maxDepth bounds decodeValue's recursion; encoding/json allows 10000 levels.
const maxDepth = 1000

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("result nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // nil, bool, json.Number or string
	}
	switch d {
	case '[':
		list := []any{}
		for dec.More() {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token() // ']'
		return list, err
	case '{':
		obj := &object{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string) // the decoder guarantees a string key here
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := obj.vals[k]; !dup {
				obj.keys = append(obj.keys, k)
			}
			obj.vals[k] = v
		}
		_, err := dec.Token() // '}'
		return obj, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}
