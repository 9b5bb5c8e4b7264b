package interop

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// apogeeBin is the binary built by TestMain.
var apogeeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	rlog.SetLogLevel("error")
	dir, err := os.MkdirTemp("", "apogee-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apogeeBin = filepath.Join(dir, "apogee")
	// Built from the main module, with its own go.sum, as users build it.
	// The server is built with the race detector, so a data race in Apogee fails the test that saw it
	// (the process exits non-zero). Benchmarks build it without, to measure real speed. The test binary
	// itself runs without -race: the official client has data races of its own (its orderly consumer).
	args := []string{"build", "-o", apogeeBin}
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/apogee")...)
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building apogee:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeLocalOffsets()
	os.RemoveAll(dir)
	os.Exit(code)
}

// apogeeProcess is a running apogee child process.
type apogeeProcess struct {
	cmd    *exec.Cmd
	lines  chan string // stderr, line by line
	done   chan error
	exited bool // the process was waited for
}

var servingPattern = regexp.MustCompile(`msg="([a-z]+) serving" addr=(\S+)`)

// startApogee runs the binary with args and waits until it has logged the address of each role in
// roles ("namesrv", "broker"). It is stopped with SIGTERM at the end of the test, and must exit 0.
func startApogee(t testing.TB, roles []string, args ...string) (*apogeeProcess, map[string]string) {
	t.Helper()
	cmd := exec.Command(apogeeBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &apogeeProcess{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is reading; the log is still echoed below
			}
			t.Logf("apogee: %s", sc.Text())
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	addrs := map[string]string{}
	deadline := time.After(20 * time.Second)
	for len(addrs) < len(roles) {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("apogee exited before serving: %v", <-p.done)
			}
			if m := servingPattern.FindStringSubmatch(line); m != nil {
				addrs[m[1]] = m[2]
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("apogee did not log %v within 20 s", roles)
		}
	}
	t.Cleanup(func() { p.stop(t) })
	return p, addrs
}

// stop sends SIGTERM and checks for a clean exit within 15 s.
func (p *apogeeProcess) stop(t testing.TB) {
	if p.exited {
		return
	}
	p.exited = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		for range p.lines {
		}
	}()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("apogee exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("apogee did not stop within 15 s of SIGTERM")
	}
}

// kill9 kills the process with SIGKILL, as a crash would, and waits for it to exit.
func (p *apogeeProcess) kill9(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("apogee did not die after SIGKILL")
	}
	p.exited = true
}

func listenArg(flag string) string { return "--" + flag + "=127.0.0.1:0" }
