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

// Process is a running apogee process.
type Process struct {
	cmd     *exec.Cmd
	dataDir string // removed by Stop and Kill
	done    chan error
	mu      sync.Mutex
	log     []string // the last lines it logged
}

// Dev is a running `apogee dev`: a NameServer and one broker (broker-a of DefaultCluster).
type Dev struct {
	*Process
	NameServer string // host:port of the NameServer
	Broker     string // host:port of the broker
}

var servingPattern = regexp.MustCompile(`msg="([a-z]+) serving" addr=(\S+)`)

// StartDev runs bin as `apogee dev` with its data in a fresh temporary directory, configured by
// SmallStore and conf (broker.conf lines), and waits until both roles serve.
func StartDev(bin string, conf ...string) (*Dev, error) {
	p, addrs, err := start(bin, []string{"namesrv", "broker"}, conf, "dev", "--namesrv-listen=127.0.0.1:0", "--broker-listen=127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Dev{Process: p, NameServer: addrs["namesrv"], Broker: addrs["broker"]}, nil
}

// StartNameServer runs bin as `apogee namesrv` on a free port and returns its address.
func StartNameServer(bin string) (*Process, string, error) {
	p, addrs, err := start(bin, []string{"namesrv"}, nil, "namesrv", "--listen=127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return p, addrs["namesrv"], nil
}

// StartBroker runs bin as `apogee broker` named name, registered with the NameServer at ns, with its
// data in a fresh temporary directory and SmallStore plus conf as its broker.conf; it returns the
// broker's address.
func StartBroker(bin, ns, name string, conf ...string) (*Process, string, error) {
	p, addrs, err := start(bin, []string{"broker"}, conf, "broker", "--listen=127.0.0.1:0", "--namesrv", ns, "--broker-name", name)
	if err != nil {
		return nil, "", err
	}
	return p, addrs["broker"], nil
}

// start runs bin with args plus a data directory and broker.conf, and waits until it has logged the
// address of each of roles.
func start(bin string, roles, conf []string, args ...string) (*Process, map[string]string, error) {
	dataDir, err := os.MkdirTemp("", "apogee-test-")
	if err != nil {
		return nil, nil, err
	}
	confFile := filepath.Join(dataDir, "broker.conf")
	lines := strings.Join(append(append([]string(nil), SmallStore...), conf...), "\n") + "\n"
	if err := os.WriteFile(confFile, []byte(lines), 0o644); err != nil {
		return nil, nil, err
	}
	if args[0] != "namesrv" {
		args = append(args, "--data-dir", filepath.Join(dataDir, "data"), "-c", confFile)
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	p := &Process{cmd: cmd, dataDir: dataDir, done: make(chan error, 1)}
	found := make(chan [2]string, 4)
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
				select {
				case found <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
		p.done <- cmd.Wait()
	}()
	addrs := map[string]string{}
	deadline := time.After(20 * time.Second)
	for len(addrs) < len(roles) {
		select {
		case a := <-found:
			addrs[a[0]] = a[1]
		case err := <-p.done:
			os.RemoveAll(dataDir)
			return nil, nil, fmt.Errorf("clienttest: apogee %s exited before serving: %v\n%s", args[0], err, p.Log())
		case <-deadline:
			cmd.Process.Kill()
			<-p.done
			os.RemoveAll(dataDir)
			return nil, nil, fmt.Errorf("clienttest: apogee %s did not serve within 20 s\n%s", args[0], p.Log())
		}
	}
	return p, addrs, nil
}

// Log returns the last lines the process logged.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// Stop sends SIGTERM, waits up to 15 s for a clean exit and removes the data.
func (p *Process) Stop() error {
	defer os.RemoveAll(p.dataDir)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("clienttest: apogee exited with %v\n%s", err, p.Log())
		}
		return nil
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		return fmt.Errorf("clienttest: apogee did not stop within 15 s of SIGTERM")
	}
}

// Kill kills the process with SIGKILL, as a crash would, waits for it and removes the data.
func (p *Process) Kill() {
	defer os.RemoveAll(p.dataDir)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
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
