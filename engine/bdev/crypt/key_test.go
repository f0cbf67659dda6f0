package crypt

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sluice/engine/bdev"
)

// TestKeyFileFormats: 32 raw bytes or 64 hex digits (with surrounding whitespace) are
// keys; anything else, a loose mode or a directory is refused.
func TestKeyFileFormats(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xAB}, 32)
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		ok   bool
		want error
	}{
		{"raw", raw, 0o600, true, nil},
		{"hex", []byte(hex.EncodeToString(raw) + "\n"), 0o400, true, nil},
		{"hex crlf", []byte("  " + strings.ToUpper(hex.EncodeToString(raw)) + "\r\n"), 0o600, true, nil},
		{"short", raw[:31], 0o600, false, bdev.ErrInvalid},
		{"long", append(raw, 1), 0o600, false, bdev.ErrInvalid},
		{"bad hex", []byte(strings.Repeat("zz", 32)), 0o600, false, bdev.ErrInvalid},
		{"group readable", raw, 0o640, false, fs.ErrPermission},
		{"world readable", raw, 0o604, false, fs.ErrPermission},
	} {
		k, err := keyFromFile(write(tc.name, tc.data, tc.mode))
		if tc.ok {
			if err != nil || !bytes.Equal(k.key[:], raw) || k.source != KEKKeyFile {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := keyFromFile(dir); err == nil {
		t.Error("a directory accepted as a key file")
	}
	if _, err := keyFromFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key file: %v", err)
	}
}

// TestKeyFilePlace: a key file inside the data directory, or beside (or below) the file
// that backs the volume, is refused; through a symbolic link too.
func TestKeyFilePlace(t *testing.T) {
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	keys := filepath.Join(root, "keys")
	for _, d := range []string{dataDir, filepath.Join(dataDir, "sub"), keys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	baseFile := filepath.Join(dataDir, "sub", "vol")
	for _, p := range []string{filepath.Join(dataDir, "kek"), filepath.Join(dataDir, "sub", "kek"), filepath.Join(keys, "kek")} {
		if err := os.WriteFile(p, make([]byte, 32), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(keys, "link")
	if err := os.Symlink(filepath.Join(dataDir, "kek"), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, dataDir, base string
		ok                 bool
	}{
		{filepath.Join(keys, "kek"), dataDir, baseFile, true},
		{filepath.Join(dataDir, "kek"), dataDir, "", false},
		{filepath.Join(dataDir, "kek"), "", "", true}, // data dir unknown, no base file
		{filepath.Join(dataDir, "sub", "kek"), "", baseFile, false},
		{filepath.Join(dataDir, "kek"), "", filepath.Join(root, "vol"), false}, // below the base's dir
		{link, dataDir, "", false},
		{"keys/kek", "", "", false}, // relative
	} {
		err := checkKeyFilePlace(tc.key, tc.dataDir, tc.base)
		if (err == nil) != tc.ok {
			t.Errorf("key %s, data dir %q, base %q: %v, want ok=%v", tc.key, tc.dataDir, tc.base, err, tc.ok)
		}
	}
}

// TestKeyFileBesideBaseFileRefused: through Create, a key file in the directory of the
// file bdev under the volume (two layers down) is refused, and so is one in the data dir.
func TestKeyFileBesideBaseFileRefused(t *testing.T) {
	g := newRig(t)
	dir := diskTempDir(t)
	if _, err := bdev.CreateFile(g.m, bdev.FileParams{Name: "f", Filename: filepath.Join(dir, "vol"), SizeBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := bdev.CreateDelay(g.m, bdev.DelayParams{Name: "d", BaseBdevName: "f"}); err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(dir, "kek")
	if err := os.WriteFile(beside, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Create(context.Background(), g.m, g.env, CreateParams{Name: "c", BaseBdevName: "d", KeyFile: beside, Format: true})
	if !errors.Is(err, bdev.ErrInvalid) || !strings.Contains(err.Error(), "beside") {
		t.Fatalf("key file beside the base file: %v", err)
	}
	env := g.env
	env.DataDir = filepath.Dir(keyFile(t))
	_, err = Create(context.Background(), g.m, env, CreateParams{Name: "c", BaseBdevName: "d",
		KeyFile: filepath.Join(env.DataDir, "kek"), Format: true})
	if !errors.Is(err, bdev.ErrInvalid) || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("key file in the data directory: %v", err)
	}
	if d, _ := g.m.Get("d"); d.ClaimedBy() != "" {
		t.Fatalf("refused creates left the base claimed by %q", d.ClaimedBy())
	}
}

// TestWrapUnwrap: the data key comes back under the same KEK; another KEK, or a header
// whose authenticated fields were edited, fails with ErrWrongKey.
func TestWrapUnwrap(t *testing.T) {
	dek, err := newDataKey()
	if err != nil {
		t.Fatal(err)
	}
	k := &kek{source: KEKKeyFile}
	copy(k.key[:], bytes.Repeat([]byte{1}, 32))
	h := Header{Generation: 1, BlockSize: 4096, Stride: 4096, DataOffset: 8192}
	if err := wrap(k, &h, dek); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(h.WrappedKey[:], dek[:16]) || bytes.Contains(h.WrappedKey[:], dek[48:]) {
		t.Fatal("wrapped key contains the data key in clear")
	}
	got, err := unwrap(k, &h)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap: %v", err)
	}
	other := &kek{source: KEKKeyFile}
	copy(other.key[:], bytes.Repeat([]byte{2}, 32))
	if _, err := unwrap(other, &h); !errors.Is(err, ErrWrongKey) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("unwrap with another KEK: %v", err)
	}
	for name, edit := range map[string]func(*Header){
		"block size":  func(h *Header) { h.BlockSize, h.Stride, h.DataOffset = 512, 4096, 8192 },
		"uuid":        func(h *Header) { h.UUID[0] ^= 1 },
		"generation":  func(h *Header) { h.Generation++ },
		"wrapped key": func(h *Header) { h.WrappedKey[3] ^= 1 },
		"nonce":       func(h *Header) { h.Nonce[0] ^= 1 },
	} {
		e := h
		edit(&e)
		if _, err := unwrap(k, &e); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s edited: %v, want the wrapped key to fail authentication", name, err)
		}
	}
	h2 := h
	if err := wrap(k, &h2, dek); err != nil || h2.Nonce == h.Nonce {
		t.Fatalf("two wraps under one KEK share a nonce (%v)", err)
	}
}

// TestSecretNeverPrints: a passphrase does not show through fmt, %#v, or slog, even
// inside the params struct that carries it.
func TestSecretNeverPrints(t *testing.T) {
	const pass = "hunter2-very-secret"
	p := CreateParams{Name: "c", BaseBdevName: "m", Passphrase: pass}
	r := RekeyParams{Name: "c", Passphrase: pass, NewPassphrase: pass}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("create", "params", p, "pass", p.Passphrase)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("rekey", "pass", r.NewPassphrase)
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s %q %x", p, p, p, p.Passphrase, p.Passphrase, p.Passphrase),
		fmt.Sprintf("%+v %#v", r, r), logged.String()} {
		if strings.Contains(s, pass) || strings.Contains(s, hex.EncodeToString([]byte(pass))) {
			t.Fatalf("passphrase printed: %s", s)
		}
	}
}
