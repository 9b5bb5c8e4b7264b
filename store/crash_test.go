package store

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/errorfs"
)

const (
	crashDirEnv   = "APOGEE_STORE_CRASH_DIR"
	crashSeedEnv  = "APOGEE_STORE_CRASH_SEED"
	crashFaultEnv = "APOGEE_STORE_CRASH_FAULTS"
	crashAsyncEnv = "APOGEE_STORE_CRASH_ASYNC"
)

func crashOptions() *Options {
	o := testOptions()
	o.SegmentSize = 256 << 10
	o.FlushDiskType = SyncFlush
	o.CheckpointInterval = 20 * time.Millisecond
	return o
}

// crashBody is the body of the message with the given unique key.
func crashBody(uniq string, n int) []byte {
	return bytes.Repeat([]byte(uniq+";"), n/(len(uniq)+1)+1)[:n]
}

// TestCrashChild is the child process of TestCrashKill9: it appends under
// SyncFlush from 8 goroutines and prints one line per acknowledged message,
// until it is killed. It does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill9")
	}
	seed, _ := strconv.Atoi(os.Getenv(crashSeedEnv))
	opts := crashOptions()
	if os.Getenv(crashAsyncEnv) != "" {
		opts.FlushDiskType = AsyncFlush // mapped segments; the page cache survives kill -9
	}
	if os.Getenv(crashFaultEnv) != "" {
		// Fail one write or fsync of the commit log at a random point.
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		op, n := errorfs.OpWrite, r.Int64N(300)
		if r.IntN(2) == 0 {
			op, n = errorfs.OpSync, r.Int64N(100)
		}
		var count atomic.Int64
		opts.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(o errorfs.Op, path string) error {
			if !strings.Contains(path, commitLogDir) {
				return nil
			}
			if o == errorfs.OpMap && op == errorfs.OpWrite {
				return errorfs.ErrInjected // write with pwrite so writes can fail
			}
			if o == op && count.Add(1)-1 == n {
				return errorfs.ErrInjected
			}
			return nil
		}))
	}
	s, err := Open(dir, opts)
	if err != nil {
		fmt.Printf("OPEN-ERROR %v\n", err)
		os.Exit(3)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(g)))
			for n := 0; ; n++ {
				uniq := fmt.Sprintf("s%dg%dn%d", seed, g, n)
				m := newMsg(fmt.Sprintf("T%d", r.IntN(3)), int32(r.IntN(2)), crashBody(uniq, r.IntN(3000)), "", "", uniq)
				res, err := s.Append(context.Background(), m)
				if err != nil {
					if res.Status == ServiceNotAvailable {
						return // writes stopped; wait to be killed
					}
					continue
				}
				out.Lock()
				fmt.Printf("ACK %s %d %d %d %s %d\n", m.Topic, m.QueueID, res.QueueOffset, res.CommitLogOffset, uniq, len(m.Body))
				out.Unlock()
			}
		})
	}
	wg.Wait()
	select {} // until killed
}

type ack struct {
	topic       string
	queueID     int32
	queueOffset int64
	offset      int64
	uniq        string
	bodyLen     int
}

// runCrashChild starts a child, kills it with SIGKILL after d and returns
// the messages it acknowledged.
func runCrashChild(t *testing.T, dir string, seed int, faults, async bool, d time.Duration) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.Itoa(seed))
	if faults {
		cmd.Env = append(cmd.Env, crashFaultEnv+"=1")
	}
	if async {
		cmd.Env = append(cmd.Env, crashAsyncEnv+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []ack
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 7 && f[0] == "ACK" {
				var a ack
				qid, _ := strconv.Atoi(f[2])
				a.topic, a.queueID, a.uniq = f[1], int32(qid), f[5]
				a.queueOffset, _ = strconv.ParseInt(f[3], 10, 64)
				a.offset, _ = strconv.ParseInt(f[4], 10, 64)
				a.bodyLen, _ = strconv.Atoi(f[6])
				acks = append(acks, a)
			} else if strings.HasPrefix(sc.Text(), "OPEN-ERROR") {
				t.Errorf("child: %s", sc.Text())
			}
		}
	}()
	<-time.After(d)
	cmd.Process.Kill()
	<-readDone
	cmd.Wait()
	if bytes.Contains(stderr.Bytes(), []byte("DATA RACE")) || bytes.Contains(stderr.Bytes(), []byte("panic:")) {
		t.Fatalf("child failed:\n%s", stderr.Bytes())
	}
	return acks
}

// verifyAfterCrash opens the store and checks every acknowledged message
// and the contiguity of every queue.
func verifyAfterCrash(t *testing.T, dir string, acks []ack) {
	t.Helper()
	s, err := Open(dir, crashOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, a := range acks {
		m, err := s.LookupMessage(a.offset)
		if err != nil {
			t.Fatalf("acknowledged %s at %d lost: %v (recovery %+v)", a.uniq, a.offset, err, s.Recovery())
		}
		if m.UniqKey() != a.uniq || m.Topic != a.topic || m.QueueID != a.queueID || m.QueueOffset != a.queueOffset ||
			!bytes.Equal(m.Body, crashBody(a.uniq, a.bodyLen)) {
			t.Fatalf("acknowledged %s at %d differs: got %s %s/%d@%d", a.uniq, a.offset, m.UniqKey(), m.Topic, m.QueueID, m.QueueOffset)
		}
	}
	var res GetResult
	for _, a := range acks { // and readable by queue offset: the consume queues were rebuilt
		if err := s.GetMessages(a.topic, a.queueID, a.queueOffset, 1, nil, &res); err != nil || res.Status != Found ||
			res.Records[0].CommitLogOffset != a.offset {
			t.Fatalf("acknowledged %s at %s/%d@%d not in its queue: %v %v (recovery %+v)", a.uniq, a.topic, a.queueID, a.queueOffset, res.Status, err, s.Recovery())
		}
	}
	for topic := range 3 {
		for qid := range int32(2) {
			name := fmt.Sprintf("T%d", topic)
			for off := s.MinOffset(name, qid); off < s.MaxOffset(name, qid); {
				if err := s.GetMessages(name, qid, off, 32, nil, &res); err != nil || res.Status != Found {
					t.Fatalf("%s/%d@%d: %v %v", name, qid, off, res.Status, err)
				}
				msgs, err := message.DecodeRecords(res.Body)
				if err != nil {
					t.Fatalf("%s/%d@%d: corrupt record returned: %v", name, qid, off, err)
				}
				for i, m := range msgs {
					if m.QueueOffset != off+int64(i) || m.Topic != name || m.QueueID != qid {
						t.Fatalf("%s/%d: entry %d holds %s/%d@%d", name, qid, off+int64(i), m.Topic, m.QueueID, m.QueueOffset)
					}
				}
				off = res.NextBeginOffset
			}
		}
	}
}

func TestCrashKill9(t *testing.T) {
	testCrash(t, false, false)
}

// TestCrashKill9Async: under ASYNC_FLUSH an acknowledged message is in the
// page cache (written through the mapping), which a process crash keeps.
func TestCrashKill9Async(t *testing.T) {
	testCrash(t, false, true)
}

func TestCrashKill9WithFaults(t *testing.T) {
	testCrash(t, true, false)
}

func testCrash(t *testing.T, faults, async bool) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(42, 43))
	var all []ack
	total := 0
	for round := range 5 {
		acks := runCrashChild(t, dir, round, faults, async, time.Duration(80+r.IntN(250))*time.Millisecond)
		total += len(acks)
		all = append(all, acks...)
		verifyAfterCrash(t, dir, all)
	}
	t.Logf("%d acknowledged messages survived 5 kill -9 (faults=%t, async=%t)", total, faults, async)
	if total == 0 {
		t.Fatal("children acknowledged nothing: the test tests nothing")
	}
}
