package nvme

import "testing"

func BenchmarkLayoutH2CData(b *testing.B) {
	hdr := make([]byte, DataHLen)
	p := LayoutParams{Receiver: RoleController, HDGST: true, DDGST: true}
	FrameHeader(PDUTypeH2CData, CHFlagLastPDU, 4096, p).Put(hdr)
	(&H2CData{CCCID: 1, DATAL: 4096}).Put(hdr)
	b.ReportAllocs()
	for b.Loop() {
		ch, _ := DecodeCommonHeader(hdr)
		l, err := ch.Layout(p)
		d, _ := DecodeH2CData(hdr)
		if err != nil || l.CheckDATAL(d.DATAL) != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCRC32C4K(b *testing.B) {
	data := make([]byte, 4096)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_ = CRC32C(data)
	}
}

func BenchmarkCQEFill(b *testing.B) {
	var c CQE
	b.ReportAllocs()
	for b.Loop() {
		c.Fill(1, 1, 2, 0, 0, StatusSuccess)
	}
}
