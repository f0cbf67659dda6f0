package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"sluice/engine/bdev/crypt"
)

func writeKey(t testing.TB, dir, name string, hexForm bool) (string, []byte) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	data := k
	if hexForm {
		data = []byte(hex.EncodeToString(k) + "\n")
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// marker is a 4 KiB plaintext block whose 32-byte motif repeats, so that any 64 bytes
// of it, wherever a search cuts it, contain the motif whole.
func markerBlock() ([]byte, []byte) {
	motif := []byte("SLUICE-PLAINTEXT-MARKER-0123456!")
	return bytes.Repeat(motif, 4096/len(motif)), motif
}

// TestEncryptedReplicationAndPromotion: host → crypt → replica → base on A; B holds
// ciphertext only, the key travels over the keys link and is stored wrapped under B's
// KEK; after promotion B serves the plaintext, rekeyed to B's KEK.
func TestEncryptedReplicationAndPromotion(t *testing.T) {
	crypt.DefaultKDF = crypt.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	for _, pass := range []bool{false, true} {
		name := "key_file"
		if pass {
			name = "passphrase"
		}
		t.Run(name, func(t *testing.T) { testEncrypted(t, pass) })
	}
}

func testEncrypted(t *testing.T, passphrase bool) {
	keys := t.TempDir()
	kekA, rawA := writeKey(t, keys, "kek-a", false)
	kekB, rawB := writeKey(t, keys, "kek-b", true)
	p := newPair(t, 16<<20, 1<<20, false)
	cp := crypt.CreateParams{Name: "cvol", BaseBdevName: "vol0", Format: true}
	secret := "correct horse battery staple"
	if passphrase {
		cp.Passphrase = crypt.Secret(secret)
	} else {
		cp.KeyFile = kekA
	}
	if _, err := crypt.Create(context.Background(), p.a.m, p.a.svc.cryptEnv(), cp); err != nil {
		t.Fatal(err)
	}
	o := p.a.open(t, "cvol")
	block, motif := markerBlock()
	for i := range uint64(64) {
		o.write(t, i*4096, block)
	}
	p.listen(t, PartnershipParams{KeyFile: kekB})
	p.dial(t, false)
	vp := VolumeParams{Volume: "vol0", Partnership: "p1", Mode: "sync"}
	if passphrase {
		vp.Passphrase = crypt.Secret(secret)
	}
	if err := p.a.svc.StartVolume(vp); err != nil {
		t.Fatal(err)
	}
	p.waitInSync(t)
	for i := range uint64(64) {
		o.write(t, (64+i)*4096, block)
	}
	p.waitInSync(t)
	p.assertSame(t)
	if !p.vol(t).keysExchanged.Load() {
		t.Fatal("in sync without a key exchange")
	}
	if !passphrase {
		// A rekey on A rewrites the header (replicated like any block) under a KEK
		// B does not have: the stream sends the new one.
		kekA2, rawA2 := writeKey(t, keys, "kek-a2", false)
		if err := crypt.Rekey(context.Background(), p.a.m, p.a.svc.cryptEnv(),
			crypt.RekeyParams{Name: "cvol", KeyFile: kekA, NewKeyFile: kekA2}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return p.vol(t).keyGeneration.Load() == 2 })
		p.waitInSync(t)
		rawA = rawA2
	}
	copyData := p.b.readAll(t, p.copyName())
	for _, secretBytes := range [][]byte{motif, rawA, rawB, []byte(hex.EncodeToString(rawA)), []byte(secret)} {
		if bytes.Contains(copyData, secretBytes) {
			t.Fatalf("B's copy holds %q in clear", secretBytes[:8])
		}
	}
	o.close()
	res, err := p.b.svc.Promote(context.Background(), PromoteParams{Partnership: "p1", Volume: "vol0", Name: "cvol"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Encrypted || res.Bdev != "cvol" {
		t.Fatalf("promotion: %+v", res)
	}
	got := p.b.readAll(t, "cvol")
	for i := range 128 {
		if !bytes.Equal(got[i*4096:(i+1)*4096], block) {
			t.Fatalf("promoted block %d differs", i)
		}
	}
	info, err := crypt.GetKeyInfo(p.b.m, "cvol")
	if err != nil || info.KEKSource != "key_file" || info.KeyFile != kekB {
		t.Fatalf("promoted volume keyed by %+v %v, want B's key file", info, err)
	}
	if p.b.svc.partnershipList()[0].hasKey("vol0") {
		t.Fatal("the exchanged key outlived the promotion")
	}
	// Fenced: A's stream is refused from now on.
	waitFor(t, func() bool { return p.vol(t).State() == VolStateRefused })
}

// TestEncryptedRefusedWithoutKeyExchange: a partner with no KEK to protect keys refuses
// the exchange, and no data frame of the encrypted volume reaches it (R3).
func TestEncryptedRefusedWithoutKeyExchange(t *testing.T) {
	keys := t.TempDir()
	kekA, _ := writeKey(t, keys, "kek-a", false)
	p := newPair(t, 16<<20, 1<<20, false)
	if _, err := crypt.Create(context.Background(), p.a.m, p.a.svc.cryptEnv(),
		crypt.CreateParams{Name: "cvol", BaseBdevName: "vol0", Format: true, KeyFile: kekA}); err != nil {
		t.Fatal(err)
	}
	p.start(t, "sync", 0) // B without key_file
	v := p.vol(t)
	waitFor(t, func() bool { return v.status(false).LastError != "" })
	st := v.status(false)
	if st.State == "replicating" || st.FramesSent != 0 || st.KeysExchanged {
		t.Fatalf("encrypted volume replicated without keys: %+v", st)
	}
	if _, err := p.b.m.Get(p.copyName()); err != nil {
		t.Logf("B made no copy: %v", err)
	} else if n := p.b.svc.partnershipList()[0].copies(); len(n) != 0 && n[0].BytesApplied != 0 {
		t.Fatalf("B applied data: %+v", n)
	}
}
