package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"sluice/engine/rpc"
)

func TestParseParams(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // "" means nil params
		err  string
	}{
		{nil, "", ""},
		{[]string{"name=Malloc0", "num_blocks=32768", "block_size=512"},
			`{"block_size":512,"name":"Malloc0","num_blocks":32768}`, ""},
		{[]string{"flag=true", "n=null", "list=[1,2]", "obj={\"a\":1}", "q=\"123\"", "empty="},
			`{"empty":"","flag":true,"list":[1,2],"n":null,"obj":{"a":1},"q":"123"}`, ""},
		{[]string{"addr=10.0.0.1:4420", "nqn=nqn.2016-06.io.sluice:cnode1", "eq=a=b"},
			`{"addr":"10.0.0.1:4420","eq":"a=b","nqn":"nqn.2016-06.io.sluice:cnode1"}`, ""},
		{[]string{"listen_address.trtype=tcp", "listen_address.traddr=127.0.0.1", "listen_address.trsvcid=4420"},
			`{"listen_address":{"traddr":"127.0.0.1","trsvcid":4420,"trtype":"tcp"}}`, ""},
		{[]string{"--json", `{"name":"a","big":12345678901234567890}`}, `{"name":"a","big":12345678901234567890}`, ""},
		{[]string{"--json=[1,2]"}, `[1,2]`, ""},
		{[]string{"-json", `{"name":"a","opts":{"x":1}}`, "name=b", "opts.y=2"},
			`{"name":"b","opts":{"x":1,"y":2}}`, ""},
		{[]string{"--json", `{"big":12345678901234567890}`, "x=1"}, `{"big":12345678901234567890,"x":1}`, ""},
		{[]string{"a={\"b\":1}", "a.c=2"}, `{"a":{"b":1,"c":2}}`, ""},
		{[]string{"a=1", "a=2"}, `{"a":2}`, ""},
		{[]string{"a=1", "a.b=2"}, "", `key "a.b": a is not an object`},
		{[]string{"a..b=1"}, "", `key "a..b": empty component`},
		{[]string{"=1"}, "", `argument "=1": want key=value`},
		{[]string{"Malloc0"}, "", `argument "Malloc0": want key=value`},
		{[]string{"-o", "json"}, "", `unknown option "-o" after the method`},
		{[]string{"--json"}, "", `--json needs a value`},
		{[]string{"--json", `{"a":`}, "", `--json: not valid JSON`},
		{[]string{"--json", `[1]`, "a=1"}, "", `--json: key=value arguments need --json to be an object`},
	} {
		got, err := parseParams(tt.args)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseParams(%q) error = %v, want %q", tt.args, err, tt.err)
			}
		case err != nil:
			t.Errorf("parseParams(%q): %v", tt.args, err)
		case string(got) != tt.want:
			t.Errorf("parseParams(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	var stderr bytes.Buffer
	opts, err := parseFlags([]string{"bdev_get_bdevs", "name=x"}, env(nil), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if opts.socket != rpc.DefaultSocketPath || opts.output != formatAuto || opts.timeout != time.Minute ||
		opts.method != "bdev_get_bdevs" || len(opts.args) != 1 || opts.args[0] != "name=x" {
		t.Errorf("defaults: %+v", opts)
	}
	opts, err = parseFlags([]string{"methods"}, env(map[string]string{"SLUICE_RPC_SOCK": "/run/a.sock"}), &stderr)
	if err != nil || opts.socket != "/run/a.sock" {
		t.Errorf("env: %+v, %v", opts, err)
	}
	opts, err = parseFlags([]string{"-s", "/tmp/b.sock", "-o", "json", "-t", "5s", "save_config", "--json", "{}"},
		env(map[string]string{"SLUICE_RPC_SOCK": "/run/a.sock"}), &stderr)
	if err != nil || opts.socket != "/tmp/b.sock" || opts.output != "json" || opts.timeout != 5*time.Second ||
		opts.method != "save_config" || strings.Join(opts.args, " ") != "--json {}" {
		t.Errorf("flags: %+v, %v", opts, err)
	}
	for _, args := range [][]string{{}, {"-o", "yaml", "x_y"}, {"-t", "0s", "x_y"}, {"-z", "x_y"}} {
		stderr.Reset()
		if _, err := parseFlags(args, env(nil), &stderr); err == nil || stderr.Len() == 0 {
			t.Errorf("parseFlags(%q) = %v, stderr %q; want a usage error", args, err, stderr.String())
		}
	}
	if _, err := parseFlags([]string{"-h"}, env(nil), io.Discard); err == nil {
		t.Error("-h: no error")
	}
}
