package client

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apogeemq/apogee/client/clienttest"
	"github.com/apogeemq/apogee/message"
)

// childEnv names the environment variable that makes the test binary run childConsumer instead of
// the tests: the process TestDevConsumerKill9 kills.
const childEnv = "APOGEE_CLIENT_CHILD_CONSUMER"

// childConsumer consumes the topic and group in APOGEE_CLIENT_CHILD_CONSUMER ("ns topic group"),
// slowly and one message at a time, printing each body as it is handled, until it is killed.
func childConsumer(spec string) int {
	var ns, topic, group string
	if _, err := fmt.Sscan(spec, &ns, &topic, &group); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	c, err := NewPushConsumer(group, func(_ context.Context, m *message.Message) error {
		time.Sleep(5 * time.Millisecond) // slow enough to be killed mid-stream
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(out, string(m.Body))
		return out.Flush()
	}, WithNameServers(ns), WithConsumeGoroutines(1), WithOffsetPersistInterval(100*time.Millisecond),
		WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c.Subscribe(topic, "*")
	if err := c.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	select {} // until killed
}

// startChild runs the test binary as a child consumer; bodies it handled arrive on the channel.
func startChild(t *testing.T, spec string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, lines
}

// A consumer process killed with SIGKILL and restarted loses nothing and re-delivers at most what it
// handled since its last offset commit (every 100 ms here).
func TestDevConsumerKill9(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 2)
	spec := strings.Join([]string{d.ns, topic, "cg_" + topic}, " ")
	const n = 200
	sendN(ctx, t, d.producer(t), topic, "m", n)

	first, lines := startChild(t, spec)
	handled := map[string]int{}
	for len(handled) < 60 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the child consumer exited")
			}
			handled[l]++
		case <-ctx.Done():
			t.Fatalf("the child consumer handled %d messages", len(handled))
		}
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	for l := range lines { // what it printed before dying
		handled[l]++
	}

	_, lines = startChild(t, spec)
	again := 0
	clienttest.WaitFor(t, 30*time.Second, "every message after the restart", func() bool {
		for {
			select {
			case l := <-lines:
				if handled[l] > 0 {
					again++
				}
				handled[l]++
			default:
				return len(handled) == n
			}
		}
	})
	// At 5 ms a message, 100 ms between commits is about 20 messages; allow for scheduling.
	if again > 60 {
		t.Fatalf("%d messages were handled again after the restart: more than the uncommitted window", again)
	}
	t.Logf("%d of %d messages handled again after kill -9", again, n)
}
