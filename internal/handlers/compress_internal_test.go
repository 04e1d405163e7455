package handlers

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/labstack/echo/v4"
)

// largePage is about the size of the Devices page with 100 sessions
// (165 KB): rows that repeat in shape and differ in detail.
func largePage() []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; b.Len() < 165<<10; i++ {
		fmt.Fprintf(&b, `<tr data-session-id="%016x"><td>Firefox on Linux</td><td>203.0.113.%d</td><td>%d minutes ago</td></tr>`+"\n",
			r.Uint64(), r.IntN(256), r.IntN(600))
	}
	return b.Bytes()
}

// compressFor runs compressPage for a client sending acceptEncoding and
// returns the body's decoded bytes and its encoding.
func compressFor(t testing.TB, page []byte, acceptEncoding string) ([]byte, string) {
	req := httptest.NewRequest(http.MethodGet, "/account/sessions", nil)
	req.Header.Set(echo.HeaderAcceptEncoding, acceptEncoding)
	c := echo.New().NewContext(req, httptest.NewRecorder())
	body, encoding, release := compressPage(c, http.StatusOK, page)
	defer release()
	var r io.Reader = bytes.NewReader(body)
	switch encoding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Error(err)
			return nil, encoding
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Error(err)
	}
	return plain, encoding
}

// These tests take the package's compressor slots and replace its pools:
// none of them may call t.Parallel (Go runs the parallel tests, which
// render pages, only after every sequential one has finished).

// A page that finds every compressor slot taken goes out uncompressed at
// once, intact; with a slot free again it is compressed.
func TestCompressionBeyondTheSlotsIsSkipped(t *testing.T) {
	page := largePage()
	for range cap(compressSlots) {
		compressSlots <- struct{}{}
	}
	for _, accept := range []string{"gzip", "br", "gzip, deflate, br"} {
		got, enc := compressFor(t, page, accept)
		if enc != "" || !bytes.Equal(got, page) {
			t.Errorf("%s, every slot taken: encoding %q, %d bytes intact %v", accept, enc, len(got), bytes.Equal(got, page))
		}
	}
	<-compressSlots
	for _, accept := range []string{"gzip", "br"} {
		got, enc := compressFor(t, page, accept)
		if enc != accept || !bytes.Equal(got, page) {
			t.Errorf("%s, a slot free: encoding %q, intact %v", accept, enc, bytes.Equal(got, page))
		}
	}
	for range cap(compressSlots) - 1 {
		<-compressSlots
	}
}

// compressBurst compresses page from n goroutines started together (half
// gzip, half brotli) with empty pools and no GC meanwhile (which would
// empty them), and returns the writers made and how many pages went out
// compressed. Every page must come back intact.
func compressBurst(t testing.TB, page []byte, n int) (made int64, compressed int) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	gzipWriters = sync.Pool{New: gzipWriters.New}
	brotliWriters = sync.Pool{New: brotliWriters.New}
	made0 := compressorsMade.Load()

	var nCompressed atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			accept := "gzip"
			if i%2 == 1 {
				accept = "br"
			}
			<-start
			got, enc := compressFor(t, page, accept)
			if !bytes.Equal(got, page) {
				t.Errorf("%s: the page came back changed (%d bytes)", accept, len(got))
			}
			if enc != "" {
				nCompressed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return compressorsMade.Load() - made0, int(nCompressed.Load())
}

// A burst of large pages while every slot is taken makes no compressor
// at all, and every page goes out intact; with the slots free, a burst
// makes no more writers than the slots (and a pool cache per processor).
func TestCompressionBurstIsBounded(t *testing.T) {
	page := largePage()
	for range cap(compressSlots) {
		compressSlots <- struct{}{}
	}
	made, compressed := compressBurst(t, page, 200)
	for range cap(compressSlots) {
		<-compressSlots
	}
	if made != 0 || compressed != 0 {
		t.Errorf("every slot taken: %d writers made, %d pages compressed; want none", made, compressed)
	}
	made, compressed = compressBurst(t, page, 200)
	if limit := int64(2 * (cap(compressSlots) + runtime.GOMAXPROCS(0))); made > limit || made == 0 {
		t.Errorf("slots free: %d writers made for 200 pages, want 1..%d", made, limit)
	}
	if compressed == 0 {
		t.Error("slots free: no page was compressed")
	}
}

// TestCompressionBurstMemory measures what a burst of large pages costs
// in compressors, with the bound and without; it runs only when asked:
//
//	GATEHOUSE_COMPRESS_BURST=1 go test -count=1 -run TestCompressionBurstMemory -v ./internal/handlers/
func TestCompressionBurstMemory(t *testing.T) {
	if os.Getenv("GATEHOUSE_COMPRESS_BURST") == "" {
		t.Skip("a measurement: set GATEHOUSE_COMPRESS_BURST=1")
	}
	page := largePage()
	bounded := compressSlots
	defer func() { compressSlots = bounded }()
	for _, slots := range []int{4, cap(bounded), 1 << 20} {
		compressSlots = make(chan struct{}, slots)
		for _, n := range []int{16, 64, 256, 1024} {
			made, compressed := compressBurst(t, page, n)
			t.Logf("slots %-7s burst %4d: %3d writers made, %4d of %4d compressed (GOMAXPROCS %d)",
				strconv.Itoa(slots), n, made, compressed, n, runtime.GOMAXPROCS(0))
		}
	}
	// What one writer holds once it has compressed this page.
	for _, w := range []struct {
		name string
		new  func(io.Writer) io.WriteCloser
	}{
		{"gzip level 1", func(o io.Writer) io.WriteCloser { w, _ := gzip.NewWriterLevel(o, gzipLevel); return w }},
		{"brotli 2, default window", func(o io.Writer) io.WriteCloser { return brotli.NewWriterLevel(o, brotliLevel) }},
		{"brotli 2, window 2^18", func(o io.Writer) io.WriteCloser {
			return brotli.NewWriterOptions(o, brotli.WriterOptions{Quality: brotliLevel, LGWin: brotliWindow})
		}},
	} {
		const k = 16
		runtime.GC() // twice: the bursts' pooled writers go at the second
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ws := make([]io.WriteCloser, k)
		sizes := 0
		for i := range ws {
			var out bytes.Buffer
			ws[i] = w.new(&out)
			ws[i].Write(page)
			ws[i].Close()
			sizes += out.Len()
			ws[i].(interface{ Reset(io.Writer) }).Reset(io.Discard) // as the pool keeps it, without its output
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ws)
		t.Logf("%-26s %5d KB per writer, page %d KB -> %d KB", w.name, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/k>>10, len(page)>>10, sizes/k>>10)
	}
}
