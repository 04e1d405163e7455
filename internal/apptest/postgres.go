package apptest

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PrivatePostgres is a Postgres cluster of a test's own, on a free port,
// that the test may stop, start, pause and resume without disturbing other
// tests. Its data lives in a temporary directory removed when the test ends.
//
// initdb and postgres refuse to run as root; as root, every command runs
// as the postgres OS user (runuser -u postgres), and the directory is
// theirs. The cluster is copied from a template made once per machine with
// initdb (under the system temporary directory, keyed by the Postgres
// version and kept between runs), which makes a cluster cost about half a
// second instead of a few.
type PrivatePostgres struct {
	t      testing.TB
	Port   int
	dir    string // socket, log, and data/
	bin    string // the Postgres binaries
	asUser string // run commands as this OS user ("" for ourselves)
	paused []int  // pids stopped by Pause
}

// URL is the cluster's postgres:// URL (the postgres database, user
// postgres, no password).
func (p *PrivatePostgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", p.Port)
}

// StartPostgres starts a private Postgres cluster for t; it is stopped and
// removed when t ends. It fails t, saying why, if no cluster can be run
// here (no Postgres binaries, or root without a postgres user): a fault
// test that silently skipped would let CI pass without proving anything.
func StartPostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatalf("private Postgres: %v", err)
	}
	asUser, uid, gid, err := postgresUser()
	if err != nil {
		t.Fatalf("private Postgres: %v", err)
	}
	tmpl, err := clusterTemplate(bin, asUser, uid, gid)
	if err != nil {
		t.Fatalf("private Postgres: initdb: %v", err)
	}
	dir, err := os.MkdirTemp("", "ghpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("cp", "-a", filepath.Join(tmpl, "data"), filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copy the cluster template: %v\n%s", err, out)
	}
	if asUser != "" {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p := &PrivatePostgres{t: t, Port: freePort(t), dir: dir, bin: bin, asUser: asUser}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the cluster and waits until it accepts connections.
// fsync is off (only an OS crash could lose data); commits stay
// synchronous, so a Stop (a crash of Postgres alone) loses nothing
// committed.
func (p *PrivatePostgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-k %s -c listen_addresses=127.0.0.1 -p %d -c fsync=off -c full_page_writes=off",
		p.dir, p.Port)
	if out, err := p.pgctl("start", "-w", "-t", "30", "-l", filepath.Join(p.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop kills the cluster at once, as a crash would (pg_ctl -m immediate):
// connections break, and the next Start recovers.
func (p *PrivatePostgres) Stop() {
	p.Resume()
	if _, err := os.Stat(filepath.Join(p.dir, "data", "postmaster.pid")); err != nil {
		return // not running
	}
	if out, err := p.pgctl("stop", "-w", "-m", "immediate"); err != nil {
		p.t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Pause freezes every process of the cluster (SIGSTOP), so Postgres hangs:
// connections stay open and nothing answers, as with a stuck server or a
// network partition. Resume undoes it; Stop resumes first.
func (p *PrivatePostgres) Pause() {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		p.t.Fatalf("pause: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		p.t.Fatalf("pause: postmaster.pid: %v", err)
	}
	// The postmaster first, so it starts no new backend meanwhile.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		p.t.Fatalf("pause: stopping the postmaster (pid %d): %v", pid, err)
	}
	p.paused = append(p.paused, pid)
	for _, child := range children(pid) {
		if err := syscall.Kill(child, syscall.SIGSTOP); err == nil {
			p.paused = append(p.paused, child)
		}
	}
	// A test that believes Postgres hangs while it does not proves
	// nothing: make sure the postmaster is stopped before going on.
	for deadline := time.Now().Add(5 * time.Second); processState(pid) != 'T'; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			p.t.Fatalf("pause: the postmaster (pid %d) is in state %q, not stopped", pid, processState(pid))
		}
	}
}

// processState is the state letter of process pid in /proc ('T' when
// stopped by a signal), or 0 when it cannot be read.
func processState(pid int) byte {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// pid (comm) state ...; comm may hold spaces, so read after ")".
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) == 0 || len(fields[0]) == 0 {
		return 0
	}
	return fields[0][0]
}

// Resume wakes a paused cluster.
func (p *PrivatePostgres) Resume() {
	for _, pid := range p.paused {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	p.paused = nil
}

func (p *PrivatePostgres) pgctl(args ...string) ([]byte, error) {
	args = append(args, "-D", filepath.Join(p.dir, "data"))
	return p.command(filepath.Join(p.bin, "pg_ctl"), args...).CombinedOutput()
}

func (p *PrivatePostgres) command(name string, args ...string) *exec.Cmd {
	return asUserCommand(p.asUser, name, args...)
}

func asUserCommand(asUser, name string, args ...string) *exec.Cmd {
	if asUser == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("runuser", append([]string{"-u", asUser, "--", name}, args...)...)
}

// children returns the pids of the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so read after ")".
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// postgresBin finds the directory of initdb and pg_ctl: PG_BIN, the newest
// /usr/lib/postgresql/*/bin, or the PATH.
func postgresBin() (string, error) {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", fmt.Errorf("no initdb found (set PG_BIN to the directory of initdb and pg_ctl)")
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// postgresUser says which OS user runs the cluster: ourselves, unless we
// are root, which initdb refuses; then the postgres user, through runuser.
func postgresUser() (name string, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return "", os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return "", 0, 0, fmt.Errorf("running as root, and there is no postgres user to run initdb as: %v", err)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return "", 0, 0, fmt.Errorf("running as root, and runuser is missing: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return "postgres", uid, gid, nil
}

var (
	templateMu    sync.Mutex
	templateCache = map[string]string{}
)

// clusterTemplate returns a directory holding data/, an initdb'ed cluster
// owned by the user that runs clusters, making it if needed. Test
// processes racing to make it each build their own and rename it into
// place; the loser's copy is removed.
func clusterTemplate(bin, asUser string, uid, gid int) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	key := bin + "|" + asUser
	if dir, ok := templateCache[key]; ok {
		return dir, nil
	}
	version, err := exec.Command(filepath.Join(bin, "initdb"), "--version").Output()
	if err != nil {
		return "", err
	}
	h := fnv.New32a()
	h.Write([]byte(string(version) + key))
	name := fmt.Sprintf("gatehouse-pg-template-%d-%x", uid, h.Sum32())
	dir := filepath.Join(os.TempDir(), name)
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err == nil {
		templateCache[key] = dir
		return dir, nil
	}
	building, err := os.MkdirTemp("", name+"-building-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(building)
	if asUser != "" {
		if err := os.Chown(building, uid, gid); err != nil {
			return "", err
		}
	}
	out, err := asUserCommand(asUser, filepath.Join(bin, "initdb"), "-D", filepath.Join(building, "data"),
		"--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	if err := os.Rename(building, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); serr != nil {
			return "", err
		}
		// Another process got there first; theirs is as good.
	}
	templateCache[key] = dir
	return dir, nil
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
