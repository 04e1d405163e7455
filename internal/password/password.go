// Package password hashes and checks passwords with argon2id, at the OWASP
// Password Storage Cheat Sheet's parameters (19 MiB, 2 passes, 1 lane).
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Length rules from NIST SP 800-63B: at least 8 characters, and long
// passphrases allowed. The upper bound only keeps hashing cost bounded.
const (
	MinLength = 8
	MaxLength = 256
)

const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// ErrMismatch means the password does not match the hash.
var ErrMismatch = errors.New("password does not match")

// ErrBusy means the hash was not even started: every slot was busy and the
// queue full, or no slot came free within the limit's wait. The caller
// should answer at once that the server is busy.
var ErrBusy = errors.New("password: too busy to hash")

// Limits bound how much hashing a Hasher does and how long a request waits
// for it. The zero value of a field takes its default.
type Limits struct {
	// Slots is how many hashes run at once; default one per P
	// (GOMAXPROCS). Each takes 19 MiB and a CPU for tens of milliseconds.
	Slots int
	// Queue is how many hashes may wait for a slot; one more is refused at
	// once. Default QueuePerSlot per slot.
	Queue int
	// MaxWait is how long a hash waits for a slot before it is refused;
	// default DefaultMaxWait.
	MaxWait time.Duration
}

// The default queue: about a third of a second of work for the slots on
// this machine (a hash takes 30-50 ms), so a request that is queued at all
// waits far less than DefaultMaxWait, and one that cannot be served soon
// is told so at once rather than after the 30 s the queue used to reach
// under a flood.
const (
	QueuePerSlot   = 8
	DefaultMaxWait = time.Second
)

// Hasher hashes and verifies passwords. Each hash takes 19 MiB, so it bounds
// how many run at once, and how many may wait: a burst of sign-ins beyond
// that is refused with ErrBusy instead of queueing without end.
type Hasher struct {
	slots   chan struct{}
	queue   int64
	waiting atomic.Int64 // hashes waiting for a slot
	maxWait time.Duration
	dummy   string // a real hash, compared against when the user is unknown
	// memoryKiB is what each new hash takes: memoryKiB in production,
	// testMemoryKiB for NewTestHasher. Verify reads it from the hash.
	memoryKiB uint32
}

// NewHasher returns a Hasher with the default limits.
func NewHasher() *Hasher { return NewHasherWith(Limits{}) }

// NewHasherWith returns a Hasher with limits l.
func NewHasherWith(l Limits) *Hasher { return newHasher(l, memoryKiB) }

// testMemoryKiB is the memory of a test hasher's hashes: argon2id's
// minimum is 8 KiB a lane.
const testMemoryKiB = 64

// NewTestHasher returns a Hasher with limits l whose hashes take 64 KiB
// instead of 19 MiB (the same argon2id, passes and format), for tests of
// everything but the cost of hashing itself. Under the race detector a
// 19 MiB hash costs about 100 ms of CPU, half of it in the page faults of
// the detector's shadow memory, which was some 40% of the test suite's CPU.
// Its hashes verify with any Hasher: the parameters are in the hash.
// Never use it outside tests.
func NewTestHasher(l Limits) *Hasher { return newHasher(l, testMemoryKiB) }

func newHasher(l Limits, memory uint32) *Hasher {
	if l.Slots <= 0 {
		l.Slots = runtime.GOMAXPROCS(0)
	}
	if l.Queue <= 0 {
		l.Queue = QueuePerSlot * l.Slots
	}
	if l.MaxWait <= 0 {
		l.MaxWait = DefaultMaxWait
	}
	h := &Hasher{slots: make(chan struct{}, l.Slots), queue: int64(l.Queue), maxWait: l.MaxWait, memoryKiB: memory}
	dummy, err := h.Hash(context.Background(), "gatehouse dummy password")
	if err != nil {
		panic(fmt.Sprintf("password: hashing the dummy password: %v", err)) // crypto/rand failed: nothing can work
	}
	h.dummy = dummy
	return h
}

// spare gives the process one P (GOMAXPROCS) more while any hash runs, and
// takes it back when none does. A hash is tens of milliseconds of CPU that
// Go's scheduler preempts only every 10 ms: with hashes on every P, a
// request waking up during a burst of sign-ins would wait a slice at each
// of its steps, tens of milliseconds in all. The spare P keeps one free for
// everything else, and the kernel shares the CPUs between the threads in
// far shorter slices. It is not kept for good: an extra P on busy CPUs
// makes the tail of ordinary requests longer (docs/performance.md, target
// 6). Changing GOMAXPROCS stops the world for some microseconds, once when
// hashing starts and once when it ends, not per hash in a burst.
var spare struct {
	sync.Mutex
	hashing int // hashes running, in every Hasher
	procs   int // GOMAXPROCS before the first of them
}

func hashing() {
	spare.Lock()
	defer spare.Unlock()
	if spare.hashing == 0 {
		spare.procs = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(spare.procs + 1)
	}
	spare.hashing++
}

func hashed() {
	spare.Lock()
	defer spare.Unlock()
	spare.hashing--
	if spare.hashing == 0 {
		runtime.GOMAXPROCS(spare.procs)
	}
}

// CheckLength says what is wrong with pw's length, or "" when it is fine.
func CheckLength(pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinLength:
		return fmt.Sprintf("Use at least %d characters.", MinLength)
	case n > MaxLength:
		return fmt.Sprintf("Use at most %d characters.", MaxLength)
	}
	return ""
}

// acquire takes a hashing slot: at once if one is free, else after waiting
// in the bounded queue for at most maxWait (channel senders are woken in
// the order they came). It returns ErrBusy when the queue is full or the
// wait runs out.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		hashing()
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return ErrBusy
	}
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		hashing()
		return nil
	case <-timer.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("waiting to hash: %w", ctx.Err())
	}
}

// Occupy takes n hashing slots, waiting for them, and holds them until
// release is called, as n long hashes would. It lets tests (and load
// drills) make the hasher busy deterministically.
func (h *Hasher) Occupy(n int) (release func()) {
	for range n {
		h.slots <- struct{}{}
	}
	return func() {
		for range n {
			<-h.slots
		}
	}
}

func (h *Hasher) release() {
	hashed()
	<-h.slots
}

// Hash returns pw's argon2id hash in the PHC string format.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, passes, h.memoryKiB, lanes, keyLen)
	h.release()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.memoryKiB, passes, lanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify returns nil when pw matches hash, ErrMismatch when it does not.
func (h *Hasher) Verify(ctx context.Context, hash, pw string) error {
	var version int
	var memory uint32
	var time uint32
	var threads uint8
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("password: not an argon2id hash")
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("password: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads); err != nil {
		return fmt.Errorf("password: parameters: %w", err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("password: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("password: key: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	got := argon2.IDKey([]byte(pw), salt, time, memory, threads, uint32(len(want)))
	h.release()
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// VerifyDummy spends the time of one Verify and always fails. Sign-in calls
// it for unknown emails, so response times do not reveal which accounts exist.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) error {
	if err := h.Verify(ctx, h.dummy, pw); err != nil && !errors.Is(err, ErrMismatch) {
		return err
	}
	return ErrMismatch
}
