package client

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests run against `apogee dev` (a NameServer and a broker in one process), built by
// TestMain from this module and started once, on free loopback ports, for the tests that need it.

var (
	apogeeBin string // built by TestMain; "" in -short mode

	devOnce sync.Once
	dev     *devProcess
	devErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		if dir, err = os.MkdirTemp("", "apogee-client-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		apogeeBin = filepath.Join(dir, "apogee")
		build := exec.Command("go", "build", "-o", apogeeBin, "./cmd/apogee")
		build.Dir = ".."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building apogee:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dev != nil {
		if err := dev.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping apogee dev:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// devProcess is a running `apogee dev`.
type devProcess struct {
	cmd     *exec.Cmd
	dataDir string
	ns      string
	broker  string
	done    chan error
	mu      sync.Mutex
	log     []string // the last lines of its log, for failures
}

var servingPattern = regexp.MustCompile(`msg="([a-z]+) serving" addr=(\S+)`)

// devCluster returns the shared `apogee dev`, starting it on first use; tests are skipped in -short
// mode.
func devCluster(t *testing.T) *devProcess {
	t.Helper()
	if apogeeBin == "" {
		t.Skip("integration test: needs the apogee binary (not built in -short mode)")
	}
	devOnce.Do(func() { dev, devErr = startDev() })
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}

func startDev() (*devProcess, error) {
	dataDir, err := os.MkdirTemp("", "apogee-client-data-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dataDir, "broker.conf")
	// Small store files; transactions checked back within about a second.
	lines := "mappedFileSizeCommitLog=67108864\nmaxHashSlotNum=20000\nmaxIndexNum=80000\n" +
		"transactionCheckInterval=300\ntransactionTimeOut=500\n"
	if err := os.WriteFile(conf, []byte(lines), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(apogeeBin, "dev", "--namesrv-listen=127.0.0.1:0", "--broker-listen=127.0.0.1:0",
		"--data-dir", filepath.Join(dataDir, "data"), "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &devProcess{cmd: cmd, dataDir: dataDir, done: make(chan error, 1)}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log = append(p.log, line)
			if len(p.log) > 200 {
				p.log = p.log[1:]
			}
			p.mu.Unlock()
			if m := servingPattern.FindStringSubmatch(line); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
		p.done <- cmd.Wait()
	}()
	deadline := time.After(20 * time.Second)
	for p.ns == "" || p.broker == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case "namesrv":
				p.ns = a[1]
			case "broker":
				p.broker = a[1]
			}
		case err := <-p.done:
			return nil, fmt.Errorf("apogee dev exited before serving: %v\n%s", err, p.logTail())
		case <-deadline:
			cmd.Process.Kill()
			return nil, fmt.Errorf("apogee dev did not serve within 20 s\n%s", p.logTail())
		}
	}
	return p, nil
}

func (p *devProcess) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// stop sends SIGTERM, waits up to 15 s for a clean exit and removes the data.
func (p *devProcess) stop() error {
	defer os.RemoveAll(p.dataDir)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("exit: %v\n%s", err, p.logTail())
		}
		return nil
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		return fmt.Errorf("no exit within 15 s of SIGTERM")
	}
}
