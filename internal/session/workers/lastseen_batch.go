package workers

import (
	"context"
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/internal/models"
)

// batchToucher writes many last-seen sightings in one statement:
// *models.SessionStore. The writer uses it when the store has it.
type batchToucher interface {
	TouchMany(ctx context.Context, sightings []models.Sighting) error
}

// lastSeenChunk is how many sessions one last-seen statement writes.
const lastSeenChunk = 500

// writeMany is writeBatch through a batchToucher: a statement (and a
// commit) per lastSeenChunk sessions rather than per session, which is what
// keeps last-seen cheap when sessions number in the millions
// (docs/performance.md). Sessions go in public id order, so two instances
// writing overlapping batches lock rows in the same order. Failures are
// handled as writeBatch handles them: after the first, the rest is dropped.
func (w *lastSeenWriter) writeMany(ctx context.Context, bt batchToucher, batch map[string]sighting) {
	all := make([]models.Sighting, 0, len(batch))
	for id, s := range batch {
		all = append(all, models.Sighting{PublicID: id, IP: s.ip, At: s.at})
	}
	slices.SortFunc(all, func(a, b models.Sighting) int { return strings.Compare(a.PublicID, b.PublicID) })
	var failure error
	dropped := 0
	for start := 0; start < len(all); start += lastSeenChunk {
		chunk := all[start:min(start+lastSeenChunk, len(all))]
		if failure != nil || ctx.Err() != nil {
			dropped += len(chunk)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, w.timeout)
		err := bt.TouchMany(wctx, chunk)
		cancel()
		if err != nil {
			failure = err
			dropped += len(chunk)
			continue
		}
		w.written.Add(int64(len(chunk)))
	}
	if dropped > 0 {
		w.failed.Add(int64(dropped))
		w.log.Warn("writing last seen failed; dropped, retried on each session's next request after a minute",
			"dropped", dropped, "err", failure)
	}
}
