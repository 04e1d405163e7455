// Command soak runs two Gatehouse instances (the real web binary, built
// from this module) against one fresh database and one fresh Redis key
// prefix, drives mixed traffic through both for a while, and reports what
// happened. It is not part of `go test`:
//
//	go run ./bench/soak                 # ten minutes
//	go run ./bench/soak -duration 1m    # a quick run
//	task soak -- -duration 1m
//
// Traffic: sign-ups, sign-ins, page views (profile, Devices, activity),
// revoking another of the user's sessions, and sign-outs, each request sent
// to either instance at random. Some new sessions are abandoned, so that
// idle expiry and the background sweep run too.
//
// The report gives requests and latencies per action, errors by kind, the
// sessions created against the records in Postgres, revokes and sign-outs
// against the cookies that still work afterwards (which must be none), and
// the memory (RSS) and threads of both processes at the start and the end.
// It exits 1 if an invariant was broken.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
	_ "github.com/jackc/pgx/v5/stdlib"
)

type options struct {
	duration    time.Duration
	workers     int
	think       time.Duration
	adminURL    string
	redisURL    string
	idle        time.Duration
	sweep       time.Duration
	abandon     float64
	maxPerUser  int
	web         string
	keep        bool
	logDir      string
	warmupUsers int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to drive traffic")
	flag.IntVar(&o.workers, "workers", 6, "concurrent simulated users")
	flag.DurationVar(&o.think, "think", 20*time.Millisecond, "pause between a worker's actions")
	flag.StringVar(&o.adminURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "Postgres to create the soak database in")
	flag.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	flag.DurationVar(&o.idle, "idle", 2*time.Minute, "SESSION_IDLE_TIMEOUT of the instances (short, so abandoned sessions expire during the run)")
	flag.DurationVar(&o.sweep, "sweep", time.Minute, "SWEEP_INTERVAL of the instances")
	flag.Float64Var(&o.abandon, "abandon", 0.1, "share of new sessions never used again")
	flag.IntVar(&o.maxPerUser, "sessions-per-user", 5, "most live sessions the soak keeps per user")
	flag.StringVar(&o.web, "web", "", "a built web binary (default: build ./cmd/web)")
	flag.BoolVar(&o.keep, "keep", false, "keep the database and Redis keys afterwards")
	flag.StringVar(&o.logDir, "logs", "", "where the instances' logs go (default: a new temporary directory, kept)")
	flag.IntVar(&o.warmupUsers, "users", 10, "accounts signed up before the measured run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) (bool, error) {
	id := randomHex(4)
	if o.logDir == "" {
		d, err := os.MkdirTemp("", "gatehouse-soak-"+id+"-")
		if err != nil {
			return false, err
		}
		o.logDir = d
	}
	if o.web == "" {
		o.web = filepath.Join(o.logDir, "web")
		defer os.Remove(o.web) // the logs stay
		fmt.Fprintln(out, "building cmd/web ...")
		if b, err := exec.Command("go", "build", "-o", o.web, "github.com/gatehouse/gatehouse/cmd/web").CombinedOutput(); err != nil {
			return false, fmt.Errorf("go build: %v\n%s", err, b)
		}
	}

	// A fresh database and Redis prefix.
	admin, err := sql.Open("pgx", o.adminURL)
	if err != nil {
		return false, err
	}
	defer admin.Close()
	dbName := "gatehouse_soak_" + id
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE DATABASE %q`, dbName)); err != nil {
		return false, fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(o.adminURL)
	u.Path = "/" + dbName
	dbURL := u.String()
	prefix := "soak:" + id + ":"
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.DialURL(o.redisURL) }, MaxIdle: 4}
	defer pool.Close()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return false, err
	}
	defer func() {
		db.Close()
		if o.keep {
			fmt.Fprintf(out, "kept database %s and Redis prefix %s\n", dbName, prefix)
			return
		}
		admin.Exec(fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, dbName))
		deleteKeys(pool, prefix)
	}()

	// Two instances, started together: they migrate under the lock.
	env := []string{
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + o.redisURL, "REDIS_PREFIX=" + prefix,
		"MIGRATE_ON_START=true", "SESSION_IDLE_TIMEOUT=" + o.idle.String(), "SWEEP_INTERVAL=" + o.sweep.String(),
		"SHUTDOWN_TIMEOUT=10s",
		// Every simulated browser comes from 127.0.0.1: the per-address
		// caps, meant for one client, are off.
		"SIGNUP_RATE_PER_IP=0", "PASSWORD_CONCURRENCY_PER_IP=0",
	}
	insts := make([]*instance, 2)
	for i := range insts {
		inst, err := startInstance(o.web, filepath.Join(o.logDir, fmt.Sprintf("web%d.log", i+1)), env)
		if err != nil {
			return false, err
		}
		insts[i] = inst
		defer inst.kill()
	}
	for _, inst := range insts {
		if err := inst.waitReady(30 * time.Second); err != nil {
			return false, err
		}
	}
	fmt.Fprintf(out, "instances on %s and %s (pids %d, %d); logs in %s\n",
		insts[0].addr, insts[1].addr, insts[0].cmd.Process.Pid, insts[1].cmd.Process.Pid, o.logDir)

	s := newSoak(o, insts)
	// Warm-up, unmeasured: the first accounts.
	for range o.warmupUsers {
		s.signUp(false)
	}
	s.resetCounters()
	startMem := []procStatus{readStatus(insts[0].pid()), readStatus(insts[1].pid())}
	fmt.Fprintf(out, "driving traffic for %v with %d workers ...\n", o.duration, o.workers)
	began := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(runCtx)
		}()
	}
	progress := time.NewTicker(time.Minute)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-progress.C:
				fmt.Fprintf(out, "  %v: %d requests, %d errors\n", time.Since(began).Round(time.Second), s.requests.Load(), s.errorCount())
			}
		}
	}()
	wg.Wait()
	cancel()
	progress.Stop()
	elapsed := time.Since(began)
	measured := s.requests.Load()
	endMem := []procStatus{readStatus(insts[0].pid()), readStatus(insts[1].pid())}

	// Checks after the run, on a quiet system.
	ctx = context.WithoutCancel(ctx)
	deadWorking := s.recheckDead()
	liveBroken, liveUnlisted := s.recheckLive()
	records, byReason, err := countRecords(ctx, db)
	if err != nil {
		return false, err
	}
	conn := pool.Get()
	pending, _ := redis.Int(conn.Do("SCARD", prefix+"ending")) // users with ends not yet recorded
	conn.Close()

	// Graceful stop of both instances.
	exits := make([]string, len(insts))
	for i, inst := range insts {
		exits[i] = inst.stop(15 * time.Second)
	}
	logCounts := make([]map[string]int, len(insts))
	for i, inst := range insts {
		logCounts[i] = countLogLevels(inst.logPath)
	}

	ok := s.report(out, reportData{
		elapsed: elapsed, measured: measured, startMem: startMem, endMem: endMem, deadWorking: deadWorking, liveBroken: liveBroken, liveUnlisted: liveUnlisted,
		records: records, byReason: byReason, pendingEnds: pending, exits: exits, logCounts: logCounts, insts: insts,
	})
	return ok, nil
}
