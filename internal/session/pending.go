package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse/gatehouse/internal/models"
)

// Ends recorded late. Ending a session kills it in Redis first (that is
// what makes it final), then records why in Postgres. If Postgres cannot
// take that write, the end is not lost: it is queued in Redis, in the list
// P ends, and the sweep writes it when Postgres answers again
// (ReplayEnds), with the time, reason and actor of the moment it happened.
// The request that ended the session succeeds: the session is dead either
// way, and its record will say why.

// pendingEnd is one end waiting for its record.
type pendingEnd struct {
	UserID int64            `json:"u"`
	IDs    []string         `json:"s"`
	Reason models.EndReason `json:"r"`
	Actor  *int64           `json:"a,omitempty"`
	At     int64            `json:"t"` // Unix milliseconds
}

func (k keys) pendingEnds() string { return k.prefix + "ends" }

// replayBatch is how many queued ends one LRANGE reads.
const replayBatch = 100

// recordEnd records that userID's sessions ids ended for reason, now. When
// Postgres fails, the end is queued in Redis for ReplayEnds and recordEnd
// succeeds; it fails only if neither store takes it.
//
// It writes with RecordEnd, which replaces an expiry guessed meanwhile:
// between the Redis kill and this write, List (or the sweep) may find the
// session gone from Redis and close its record as expired, and the real
// reason must win.
func (m *Manager) recordEnd(ctx context.Context, userID int64, ids []string, reason models.EndReason, actor *int64) error {
	if len(ids) == 0 {
		return nil
	}
	at := m.now()
	err := m.records.RecordEnd(ctx, userID, ids, reason, actor, at)
	if err == nil {
		return nil
	}
	if qerr := m.deferEnd(pendingEnd{UserID: userID, IDs: ids, Reason: reason, Actor: actor, At: at.UnixMilli()}); qerr != nil {
		return errors.Join(err, qerr)
	}
	m.log.WarnContext(ctx, "sessions ended; their record is queued until Postgres answers",
		"user", userID, "sessions", ids, "reason", reason, "err", err)
	return nil
}

func (m *Manager) deferEnd(e pendingEnd) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("queue session end: %w", err)
	}
	conn := m.pool.Get()
	defer conn.Close()
	if _, err := conn.Do("RPUSH", m.keys.pendingEnds(), b); err != nil {
		return fmt.Errorf("queue session end: %w", err)
	}
	return nil
}

// ReplayEnds writes the records of ends queued while Postgres was down,
// oldest first, and returns how many it wrote. It stops at the first
// Postgres failure (the rest wait for the next run). Each entry is removed
// only after its record is written, and writing one twice is harmless, so
// several instances may replay at once.
func (m *Manager) ReplayEnds(ctx context.Context) (int, error) {
	conn := m.pool.Get()
	defer conn.Close()
	key := m.keys.pendingEnds()
	done := 0
	for ctx.Err() == nil {
		entries, err := redis.ByteSlices(conn.Do("LRANGE", key, 0, replayBatch-1))
		if err != nil {
			return done, fmt.Errorf("read queued session ends: %w", err)
		}
		removed := 0
		for _, raw := range entries {
			var e pendingEnd
			if err := json.Unmarshal(raw, &e); err != nil {
				m.log.ErrorContext(ctx, "dropping an unreadable queued session end", "err", err)
			} else if err := m.records.RecordEnd(ctx, e.UserID, e.IDs, e.Reason, e.Actor, time.UnixMilli(e.At)); err != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) {
					return done, err // Postgres is still unreachable: try again next run
				}
				// Postgres answered, and refused: retrying cannot help.
				m.log.ErrorContext(ctx, "dropping a queued session end Postgres refuses",
					"user", e.UserID, "sessions", e.IDs, "reason", e.Reason, "err", err)
			} else {
				done++
			}
			n, err := redis.Int(conn.Do("LREM", key, 1, raw))
			if err != nil {
				return done, fmt.Errorf("remove queued session end: %w", err)
			}
			removed += n
		}
		// Another instance replaying the same entries may have removed
		// them first; stop once a batch was short or removed nothing.
		if len(entries) < replayBatch || removed == 0 {
			break
		}
	}
	return done, ctx.Err()
}

// PendingEnds is how many ends wait for their record.
func (m *Manager) PendingEnds() (int, error) {
	conn := m.pool.Get()
	defer conn.Close()
	n, err := redis.Int(conn.Do("LLEN", m.keys.pendingEnds()))
	if err != nil {
		return 0, fmt.Errorf("count queued session ends: %w", err)
	}
	return n, nil
}
