package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPrintResult(t *testing.T) {
	bdevs := `[
	  {"name":"Malloc0","block_size":512,"num_blocks":32768,"claimed":true,
	   "aliases":["a1","a2"],"driver_specific":{"malloc":{"numa":0}},"uuid":null},
	  {"name":"Nvme0n1","block_size":4096,"num_blocks":100,"claimed":false,
	   "aliases":[],"assigned_rate_limits":{"rw_ios_per_sec":0,"rw_mbytes_per_sec":0},"product_name":"line\tbreak\n"}
	]`
	for _, tt := range []struct {
		name, format, in, want string
	}{
		{"list as table", formatAuto, bdevs, `
NAME     BLOCK_SIZE  NUM_BLOCKS  CLAIMED  ALIASES  DRIVER_SPECIFIC  UUID  ASSIGNED_RATE_LIMITS                    PRODUCT_NAME
Malloc0  512         32768       true     a1,a2    {1 field}        -     -                                       -
Nvme0n1  4096        100         false    []       -                -     {rw_ios_per_sec=0,rw_mbytes_per_sec=0}  line break
`},
		{"list as json", formatJSON, `[{"a":1}]`, `
[
  {
    "a": 1
  }
]
`},
		{"object in auto is json", formatAuto, `{"version":"sluice v1","fields":{"major":1}}`, `
{
  "version": "sluice v1",
  "fields": {
    "major": 1
  }
}
`},
		{"object as table", formatTable, `{"version":"sluice v1","fields":{"major":1,"minor":2},"tags":[1,2],"big":12345678901234567890}`, `
version  sluice v1
fields   {major=1,minor=2}
tags     1,2
big      12345678901234567890
`},
		{"scalar", formatAuto, `true`, "\ntrue\n"},
		{"empty list", formatTable, `[]`, "\n[]\n"},
		{"list of scalars", formatAuto, `["a","b"]`, "\n[\n  \"a\",\n  \"b\"\n]\n"},
		{"mixed list", formatAuto, `[{"a":1},2]`, "\n[\n  {\n    \"a\": 1\n  },\n  2\n]\n"},
		{"summaries", formatAuto, `[{"long":["aaaaaaaaaa","bbbbbbbbbb","cccccccccc","dddddddddd"],
			"objs":[{"x":1}],"wide":{"a":1,"b":2,"c":3,"d":4},"nested":{"a":{"b":1}},"s":""}]`, `
LONG       OBJS      WIDE        NESTED     S
[4 items]  [1 item]  {4 fields}  {1 field}  ""
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := printResult(&buf, json.RawMessage(tt.in), tt.format); err != nil {
				t.Fatal(err)
			}
			if got, want := buf.String(), strings.TrimPrefix(tt.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestDecodeOrdered(t *testing.T) {
	v, err := decodeOrdered(json.RawMessage(`{"z":1,"a":{"y":[true,null,"s"],"b":2},"z":3}`))
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(*object)
	if strings.Join(obj.keys, ",") != "z,a" || obj.vals["z"].(json.Number) != "3" {
		t.Errorf("keys %v, z %v", obj.keys, obj.vals["z"])
	}
	inner := obj.vals["a"].(*object)
	if strings.Join(inner.keys, ",") != "y,b" {
		t.Errorf("inner keys %v", inner.keys)
	}
	for _, bad := range []string{``, `{"a":}`, `[1] 2`, strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)} {
		if _, err := decodeOrdered(json.RawMessage(bad)); err == nil {
			t.Errorf("decodeOrdered(%.20q) succeeded", bad)
		}
	}
}
