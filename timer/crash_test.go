package timer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashDirEnv  = "APOGEE_TIMER_CRASH_DIR"
	crashSeedEnv = "APOGEE_TIMER_CRASH_SEED"
)

func crashOptions() *Options {
	return &Options{
		SlotDuration:      100 * time.Millisecond,
		Slots:             16, // a 1.6 s ring: timers due later roll
		MaxDelay:          time.Minute,
		EntriesPerSegment: 512, // segments fill and are deleted
		FlushInterval:     20 * time.Millisecond,
		Lookahead:         20 * time.Millisecond,
		RetryInterval:     50 * time.Millisecond,
	}
}

// TestCrashChild is the child process of TestCrashKill9: it adds timers
// from 4 goroutines and delivers them, printing TRY before and ACK after
// each Add and DEL for each delivered timer, until it is killed. It does
// nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill9")
	}
	seed, _ := strconv.Atoi(os.Getenv(crashSeedEnv))
	w, err := Open(dir, crashOptions())
	if err != nil {
		fmt.Printf("OPEN-ERROR %v\n", err)
		os.Exit(3)
	}
	var out sync.Mutex
	print := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format, args...)
		out.Unlock()
	}
	go w.Run(context.Background(), func(batch []Entry) error {
		for _, e := range batch {
			print("DEL %d\n", e.Ref)
		}
		return nil
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(g)))
			for n := 0; ; n++ {
				ref := int64(seed)<<32 | int64(g)<<24 | int64(n)
				due := time.Now().Add(time.Duration(r.IntN(3500)-500) * time.Millisecond).UnixMilli()
				size := int32(r.IntN(1 << 16))
				print("TRY %d %d %d\n", ref, due, size)
				if err := w.Add(context.Background(), time.UnixMilli(due), ref, size); err != nil {
					print("ADD-ERROR %v\n", err)
					return
				}
				print("ACK %d\n", ref)
			}
		})
	}
	wg.Wait()
	select {} // until killed
}

type crashTimer struct {
	due  int64
	size int32
}

// TestCrashKill9 kills a child that adds and delivers timers with SIGKILL
// at random points, several times on the same directory, then reopens it:
// every timer whose Add returned and that was not delivered before a kill
// is delivered, and every delivered timer is one that was added.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	tried := make(map[int64]crashTimer)
	acked := make(map[int64]bool)
	done := make(map[int64]bool)
	rounds := 6
	for seed := 1; seed <= rounds; seed++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.Itoa(seed))
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		kill := time.AfterFunc(time.Duration(100+rand.IntN(300))*time.Millisecond, func() { cmd.Process.Kill() })
		cmd.Wait()
		kill.Stop()
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "OPEN-ERROR", "ADD-ERROR":
				t.Fatalf("round %d: %s", seed, sc.Text())
			case "TRY":
				if len(f) == 4 {
					ref, _ := strconv.ParseInt(f[1], 10, 64)
					due, _ := strconv.ParseInt(f[2], 10, 64)
					size, _ := strconv.ParseInt(f[3], 10, 32)
					tried[ref] = crashTimer{due, int32(size)}
				}
			case "ACK", "DEL":
				if len(f) != 2 {
					continue // the kill cut the line
				}
				ref, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					continue
				}
				if f[0] == "ACK" {
					acked[ref] = true
				} else {
					done[ref] = true
				}
			}
		}
	}
	outstanding := make(map[int64]bool)
	for ref := range acked {
		if !done[ref] {
			outstanding[ref] = true
		}
	}
	t.Logf("%d rounds: %d timers added, %d delivered by the children, %d outstanding", rounds, len(acked), len(done), len(outstanding))

	w := openT(t, dir, crashOptions())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	allDone := make(chan struct{})
	var bad error
	if len(outstanding) == 0 {
		close(allDone)
	}
	runErr := make(chan error, 1)
	go func() {
		runErr <- w.Run(ctx, func(batch []Entry) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range batch {
				want, ok := tried[e.Ref]
				if !ok || want.due != e.DeliverAt || want.size != e.Size {
					bad = fmt.Errorf("delivered %+v, which was never added (want %+v)", e, want)
				}
				if time.Now().UnixMilli() < e.DeliverAt {
					bad = fmt.Errorf("delivered %+v %v early", e, time.Until(e.Due()))
				}
				if outstanding[e.Ref] {
					delete(outstanding, e.Ref)
					if len(outstanding) == 0 {
						close(allDone)
					}
				}
			}
			return nil
		})
	}()
	select {
	case <-allDone:
	case <-time.After(30 * time.Second):
	}
	cancel()
	if err := <-runErr; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
	if len(outstanding) > 0 {
		for ref := range outstanding {
			t.Errorf("acknowledged timer %d (due %v) lost", ref, time.UnixMilli(tried[ref].due))
			break
		}
		t.Fatalf("%d acknowledged timers lost", len(outstanding))
	}
}
