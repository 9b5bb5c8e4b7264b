// Package clienttest runs `apogee dev` (a NameServer and a broker in one process) for integration
// tests of package client and of programs that use it. It builds the binary from the module's
// source, starts it on free loopback ports with small store files, and stops it.
//
// Usage, in a TestMain:
//
//	bin, err := clienttest.Build(moduleRoot, tmpDir)
//	dev, err := clienttest.StartDev(bin, "transactionCheckInterval=300")
//	defer dev.Stop()
//	p, err := client.NewProducer(client.WithNameServers(dev.NameServer))
package clienttest

import (
	"bufio"
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

// SmallStore is broker.conf lines that keep a test broker's disk use small: the defaults preallocate
// a 1 GiB commit-log segment and a 400 MiB index file.
var SmallStore = []string{"mappedFileSizeCommitLog=67108864", "maxHashSlotNum=20000", "maxIndexNum=80000"}

// Build compiles ./cmd/apogee of the module at moduleRoot into dir and returns the binary's path.
func Build(moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "apogee")
	build := exec.Command("go", "build", "-o", bin, "./cmd/apogee")
	build.Dir = moduleRoot
	out, err := build.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("clienttest: building apogee: %v\n%s", err, out)
	}
	return bin, nil
}

// Dev is a running `apogee dev`.
type Dev struct {
	NameServer string // host:port of the NameServer
	Broker     string // host:port of the broker (broker-a of DefaultCluster)

	cmd     *exec.Cmd
	dataDir string
	done    chan error
	mu      sync.Mutex
	log     []string // the last lines of its log
}

var servingPattern = regexp.MustCompile(`msg="([a-z]+) serving" addr=(\S+)`)

// StartDev runs bin as `apogee dev` with its data in a fresh temporary directory, configured by
// SmallStore and conf (broker.conf lines), and waits until both roles serve.
func StartDev(bin string, conf ...string) (*Dev, error) {
	dataDir, err := os.MkdirTemp("", "apogee-dev-")
	if err != nil {
		return nil, err
	}
	confFile := filepath.Join(dataDir, "broker.conf")
	lines := strings.Join(append(append([]string(nil), SmallStore...), conf...), "\n") + "\n"
	if err := os.WriteFile(confFile, []byte(lines), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "dev", "--namesrv-listen=127.0.0.1:0", "--broker-listen=127.0.0.1:0",
		"--data-dir", filepath.Join(dataDir, "data"), "-c", confFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Dev{cmd: cmd, dataDir: dataDir, done: make(chan error, 1)}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log = append(d.log, line)
			if len(d.log) > 200 {
				d.log = d.log[1:]
			}
			d.mu.Unlock()
			if m := servingPattern.FindStringSubmatch(line); m != nil {
				select {
				case addrs <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
		d.done <- cmd.Wait()
	}()
	deadline := time.After(20 * time.Second)
	for d.NameServer == "" || d.Broker == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case "namesrv":
				d.NameServer = a[1]
			case "broker":
				d.Broker = a[1]
			}
		case err := <-d.done:
			os.RemoveAll(dataDir)
			return nil, fmt.Errorf("clienttest: apogee dev exited before serving: %v\n%s", err, d.Log())
		case <-deadline:
			cmd.Process.Kill()
			<-d.done
			os.RemoveAll(dataDir)
			return nil, fmt.Errorf("clienttest: apogee dev did not serve within 20 s\n%s", d.Log())
		}
	}
	return d, nil
}

// Log returns the last lines the process logged.
func (d *Dev) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.log, "\n")
}

// Stop sends SIGTERM, waits up to 15 s for a clean exit and removes the data.
func (d *Dev) Stop() error {
	defer os.RemoveAll(d.dataDir)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("clienttest: apogee dev exited with %v\n%s", err, d.Log())
		}
		return nil
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		return fmt.Errorf("clienttest: apogee dev did not stop within 15 s of SIGTERM")
	}
}

// WaitFor polls cond every 20 ms until it holds, failing t after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
