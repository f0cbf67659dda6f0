package mem_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"sluice/engine/mem"
)

// A reactor's view: one domain per node, one Core per reactor, Alloc on the I/O path,
// ErrNoMemory as back-pressure, Reclaim from a poller.
func Example() {
	d, err := mem.NewDomain(mem.DomainConfig{
		SizeBytes: 8 << 20,
		Hugepages: mem.HugepagesPrefer, // falls back (with one warning) when none are reserved
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	core, err := d.NewCore(0)
	if err != nil {
		panic(err)
	}

	ctx, err := core.Alloc(200) // a request context: class 256, 64-byte aligned
	if errors.Is(err, mem.ErrNoMemory) {
		return // queue the I/O or fail it with a retryable status
	}
	buf, _ := core.Alloc(128 << 10) // an I/O buffer: 4 KiB aligned
	fmt.Println(len(ctx.Bytes()), cap(ctx.Bytes()), len(buf.Bytes()))

	core.Free(buf)
	core.Free(ctx)
	core.Reclaim() // from a poller: takes back what other cores freed
	core.PublishStats()
	st := d.Stats()
	fmt.Println(st.Cores[0].BytesInUse, st.PagesTotal)
	// Output:
	// 200 256 131072
	// 0 4
}
