// Package localserver runs private Postgres and Redis servers as child
// processes: for the tests that must stop or freeze a service
// (internal/apptest), and for `web dev`, which keeps one of each under
// ./.gatehouse/dev/. One piece of code for both, so what the tests prove
// about starting, stopping and reaching these servers holds for dev too.
package localserver

import (
	"bytes"
	"errors"
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
	"time"
)

// InstallPostgres says how to get initdb and pg_ctl.
const InstallPostgres = "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; " +
	"Fedora: dnf install postgresql-server; macOS: brew install postgresql@16), or set PG_BIN to the directory of initdb and pg_ctl"

// Postgres is a Postgres cluster in Dir (data/, the socket and the log),
// listening on 127.0.0.1:Port, user postgres, trust authentication.
//
// initdb and postgres refuse to run as root; as root, every command runs
// as the postgres OS user (runuser -u postgres), and Dir is theirs.
type Postgres struct {
	Port   int
	Dir    string
	bin    string // the Postgres binaries
	asUser string // run commands as this OS user ("" for ourselves)
	uid    int
	gid    int
	paused []int // pids stopped by Pause
}

// NewPostgres prepares a cluster in dir on port; it neither creates nor
// starts it (Init, InitFromTemplate, Start). It fails, saying what to
// install, when the Postgres binaries are missing.
func NewPostgres(dir string, port int) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	asUser, uid, gid, err := postgresUser()
	if err != nil {
		return nil, err
	}
	// The parents must be open to the postgres user when it runs the
	// cluster (as root); the cluster's own directory is theirs alone.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if asUser != "" {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	return &Postgres{Port: port, Dir: dir, bin: bin, asUser: asUser, uid: uid, gid: gid}, nil
}

// URL is the cluster's postgres:// URL for database (user postgres, no
// password).
func (p *Postgres) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", p.Port, database)
}

// Initialized reports whether Dir holds a cluster.
func (p *Postgres) Initialized() bool {
	_, err := os.Stat(filepath.Join(p.Dir, "data", "PG_VERSION"))
	return err == nil
}

// Init creates the cluster with initdb, unless Dir already holds one.
func (p *Postgres) Init() error {
	if p.Initialized() {
		return nil
	}
	return initdb(p.bin, p.asUser, filepath.Join(p.Dir, "data"))
}

// InitFromTemplate copies a cluster made once per machine with initdb
// (under the system temporary directory, keyed by the Postgres version
// and kept between runs): about half a second instead of a few.
func (p *Postgres) InitFromTemplate() error {
	tmpl, err := clusterTemplate(p.bin, p.asUser, p.uid, p.gid)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(tmpl, "data"), filepath.Join(p.Dir, "data")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the cluster template: %v\n%s", err, out)
	}
	return nil
}

// Start starts the cluster and waits until it accepts connections. fsync
// is off unless durable (only an OS crash could lose data; tests need no
// more); commits stay synchronous, so a Stop (a crash of Postgres alone)
// loses nothing committed.
func (p *Postgres) Start(durable bool) error {
	opts := fmt.Sprintf("-k %s -c listen_addresses=127.0.0.1 -p %d", p.Dir, p.Port)
	if !durable {
		opts += " -c fsync=off -c full_page_writes=off"
	}
	if out, err := p.pgctl("start", "-w", "-t", "30", "-l", filepath.Join(p.Dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.Dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

// Running reports whether the cluster's postmaster is running.
func (p *Postgres) Running() bool {
	_, err := os.Stat(filepath.Join(p.Dir, "data", "postmaster.pid"))
	return err == nil
}

// Stop kills the cluster at once, as a crash would (pg_ctl -m immediate):
// connections break, and the next Start recovers.
func (p *Postgres) Stop() error { return p.stop("immediate") }

// Shutdown stops the cluster cleanly (pg_ctl -m fast): connections are
// ended and the data written.
func (p *Postgres) Shutdown() error { return p.stop("fast") }

func (p *Postgres) stop(mode string) error {
	p.Resume()
	if !p.Running() {
		return nil
	}
	if out, err := p.pgctl("stop", "-w", "-m", mode); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// RequirePasswords makes every TCP connection sign in with a password
// (scram-sha-256), as a server on another host would ask; the Unix socket
// in Dir stays trusted, for the cluster's own tools. pg_ctl reload only
// signals the postmaster: new connections follow the rule a moment later.
func (p *Postgres) RequirePasswords() error {
	const hba = "local all all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n" +
		"host all all ::1/128 scram-sha-256\n"
	// The file exists (initdb wrote it), so writing it keeps its owner.
	if err := os.WriteFile(filepath.Join(p.Dir, "data", "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("require passwords: %w", err)
	}
	if out, err := p.pgctl("reload"); err != nil {
		return fmt.Errorf("pg_ctl reload: %v\n%s", err, out)
	}
	return nil
}

// Pause freezes every process of the cluster (SIGSTOP), so Postgres hangs:
// connections stay open and nothing answers, as with a stuck server or a
// network partition. Resume undoes it; Stop resumes first.
func (p *Postgres) Pause() error {
	b, err := os.ReadFile(filepath.Join(p.Dir, "data", "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return fmt.Errorf("pause: postmaster.pid: %w", err)
	}
	// The postmaster first, so it starts no new backend meanwhile.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause: stopping the postmaster (pid %d): %w", pid, err)
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
			return fmt.Errorf("pause: the postmaster (pid %d) is in state %q, not stopped", pid, processState(pid))
		}
	}
	return nil
}

// Resume wakes a paused cluster.
func (p *Postgres) Resume() {
	for _, pid := range p.paused {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	p.paused = nil
}

func (p *Postgres) pgctl(args ...string) ([]byte, error) {
	args = append(args, "-D", filepath.Join(p.Dir, "data"))
	return asUserCommand(p.asUser, filepath.Join(p.bin, "pg_ctl"), args...).CombinedOutput()
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
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(path), nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found (not in /usr/lib/postgresql/*/bin nor on the PATH): " + InstallPostgres)
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
		return "", 0, 0, fmt.Errorf("running as root, and there is no postgres user to run initdb as (%v): %s", err, InstallPostgres)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return "", 0, 0, fmt.Errorf("running as root, and runuser is missing (Debian/Ubuntu: apt-get install util-linux): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return "postgres", uid, gid, nil
}

func initdb(bin, asUser, dataDir string) error {
	out, err := asUserCommand(asUser, filepath.Join(bin, "initdb"), "-D", dataDir,
		"--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

var (
	templateMu    sync.Mutex
	templateCache = map[string]string{}
)

// clusterTemplate returns a directory holding data/, an initdb'ed cluster
// owned by the user that runs clusters, making it if needed. Processes
// racing to make it each build their own and rename it into place; the
// loser's copy is removed.
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
	if err := initdb(bin, asUser, filepath.Join(building, "data")); err != nil {
		return "", err
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

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
