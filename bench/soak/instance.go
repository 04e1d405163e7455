package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Instances: the real web binary, started, stopped and watched.

type instance struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	logFile *os.File
	done    chan error
}

func startInstance(bin, logPath string, env []string) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ADDR=" + addr, "BASE_URL=http://" + addr}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	inst := &instance{cmd: cmd, addr: addr, logPath: logPath, logFile: f, done: make(chan error, 1)}
	go func() { inst.done <- cmd.Wait() }()
	return inst, nil
}

func (i *instance) pid() int     { return i.cmd.Process.Pid }
func (i *instance) base() string { return "http://" + i.addr }

func (i *instance) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if res, err := http.Get(i.base() + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-i.done:
			i.done <- err
			return fmt.Errorf("instance on %s exited at start-up (%v); see %s", i.addr, err, i.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("instance on %s not ready after %v; see %s", i.addr, d, i.logPath)
}

// stop sends SIGTERM and says how the process ended.
func (i *instance) stop(d time.Duration) string {
	i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-i.done:
		i.done <- err
		if err == nil {
			return "exit 0"
		}
		return err.Error()
	case <-time.After(d):
		return fmt.Sprintf("still running %v after SIGTERM", d)
	}
}

func (i *instance) kill() {
	select {
	case err := <-i.done:
		i.done <- err
	default:
		i.cmd.Process.Kill()
		<-i.done
	}
	i.logFile.Close()
}

type procStatus struct{ rssKB, hwmKB, threads int }

// readStatus reads VmRSS, VmHWM (peak RSS) and Threads from /proc.
func readStatus(pid int) procStatus {
	var s procStatus
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		var n int
		fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "Threads":
			s.threads = n
		}
	}
	return s
}

func countLogLevels(path string) map[string]int {
	counts := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return counts
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, lvl := range []string{"WARN", "ERROR"} {
			if strings.Contains(line, "level="+lvl) {
				msg := line
				if i := strings.Index(line, "msg="); i >= 0 {
					msg = line[i+4:]
					if j := strings.Index(msg, " "); j > 0 && !strings.HasPrefix(msg, `"`) {
						msg = msg[:j]
					} else if strings.HasPrefix(msg, `"`) {
						if j := strings.Index(msg[1:], `"`); j >= 0 {
							msg = msg[:j+2]
						}
					}
				}
				counts[lvl+" "+msg]++
			}
		}
	}
	return counts
}
