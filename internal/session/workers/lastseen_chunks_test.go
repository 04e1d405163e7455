package workers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/models"
)

// batchFake is a store with TouchMany; it records the chunks it was given.
type batchFake struct {
	fakeToucher
	mu     sync.Mutex
	chunks [][]models.Sighting
}

func (f *batchFake) TouchMany(_ context.Context, s []models.Sighting) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chunks = append(f.chunks, slices.Clone(s))
	return nil
}

// TestLastSeenWritesInChunks: a store with TouchMany gets the queue in
// chunks of lastSeenChunk, each in public id order, and Touch is not used.
func TestLastSeenWritesInChunks(t *testing.T) {
	f := &batchFake{}
	w := newLastSeenWriter(f, slog.New(slog.NewTextHandler(io.Discard, nil)), 2000, time.Second)
	now := time.Now()
	n := 2*lastSeenChunk + 7
	batch := map[string]sighting{}
	for i := range n {
		batch[fmt.Sprintf("id%05d", n-i)] = sighting{ip: "10.0.0.1", at: now}
	}
	w.writeMany(context.Background(), f, batch)
	var sizes []int
	var all []models.Sighting
	for _, c := range f.chunks {
		sizes = append(sizes, len(c))
		all = append(all, c...)
	}
	if !slices.Equal(sizes, []int{lastSeenChunk, lastSeenChunk, 7}) {
		t.Errorf("chunks of %v, want %d, %d and 7", sizes, lastSeenChunk, lastSeenChunk)
	}
	if !slices.IsSortedFunc(all, func(a, b models.Sighting) int { return strings.Compare(a.PublicID, b.PublicID) }) {
		t.Error("sightings not in public id order")
	}
	if len(f.writes) != 0 {
		t.Errorf("Touch used %d times alongside TouchMany", len(f.writes))
	}
	if got := w.written.Load(); got != int64(n) {
		t.Errorf("written %d, want %d", got, n)
	}
}
