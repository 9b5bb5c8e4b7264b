package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/store"
)

// sendAllocs sends n single messages to a broker over a raw connection, pipelined, from a client
// that allocates nothing per message, and returns the process's allocations per message: the
// broker's cost of a send, transport included. form is the header's form; short names are what
// SEND_MESSAGE_V2 carries (the official Go client sends JSON with them).
func sendAllocs(t testing.TB, flush store.FlushDiskType, form remoting.SerializeType, n int) float64 {
	tb := openTestBrokerTB(t, "", func(o *Options) { o.Store.FlushDiskType = flush })
	req := sendRequest("Allocs", 0, string(make([]byte, 1024)), map[string]string{
		"UNIQ_KEY": "7F0000010001000000000000000000AA", "TAGS": "TagA", "KEYS": "k1 k2", "WAIT": "true"})
	req.Code = int16(code.SendMessageV2)
	for i := 0; i < len(req.ExtFields); i += 2 {
		for _, f := range []sendField{fieldProducerGroup, fieldTopic, fieldDefaultTopic, fieldDefaultQueueNums, fieldQueueID,
			fieldSysFlag, fieldBornTimestamp, fieldFlag, fieldProperties, fieldReconsumeTimes, fieldBatch} {
			if req.ExtFields[i] == f.long {
				req.ExtFields[i] = f.short
			}
		}
	}
	req.SerializeType = form
	frame, err := remoting.AppendFrame(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", tb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The writer runs at most a few windows of requests ahead of the answers read, as a pipelining
	// producer does.
	credit := make(chan struct{}, 1<<20)
	for range 4 {
		credit <- struct{}{}
	}
	exchange := func(count int) {
		written := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < count && err == nil; i += allocWindow {
				<-credit
				for j := i; j < min(i+allocWindow, count); j++ {
					_, err = c.Write(frame)
				}
			}
			written <- err
		}()
		readAnswers(t, c, count, credit)
		if err := <-written; err != nil {
			t.Fatal(err)
		}
	}
	// The first sends create the topic and warm the pools; then n are measured.
	exchange(4 * allocWindow)
	time.Sleep(50 * time.Millisecond) // let the dispatcher catch up
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if b, ok := t.(*testing.B); ok {
		b.ResetTimer() // ns/op: the measured sends only, not the broker's start and warm-up
	}
	exchange(n)
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}

// allocWindow is how many requests sendAllocs writes per window.
const allocWindow = 64

// readAnswers reads count answer frames, checking each is a success, without allocating, and gives
// the writer a credit per window read.
func readAnswers(t testing.TB, c net.Conn, count int, credit chan<- struct{}) {
	var buf [64 << 10]byte
	var hdr [4]byte
	for i := range count {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		size := int(binary.BigEndian.Uint32(hdr[:]))
		if size > len(buf) || size < 8 {
			t.Fatalf("answer frame of %d bytes", size)
		}
		if _, err := io.ReadFull(c, buf[:size]); err != nil {
			t.Fatal(err)
		}
		headerLen := int(binary.BigEndian.Uint32(buf[:4]) & remoting.MaxHeaderLength)
		if !answerSucceeded(buf[4 : 4+headerLen]) {
			t.Fatalf("answer %d is not a success: %q", i, buf[4:4+headerLen])
		}
		if (i+1)%allocWindow == 0 {
			credit <- struct{}{}
		}
	}
}

func answerSucceeded(header []byte) bool {
	if len(header) > 0 && header[0] == '{' {
		return bytes.HasPrefix(header, []byte(`{"code":0,`))
	}
	return len(header) >= 2 && header[0] == 0 && header[1] == 0
}

// TestSendMakesNoAllocation holds the broker's send path, transport included, to no allocation
// per message for the common case (one message to an existing topic), in both header forms and
// both flush modes.
func TestSendMakesNoAllocation(t *testing.T) {
	if testing.Short() {
		t.Skip("sends thousands of messages")
	}
	if raceEnabled {
		t.Skip("the race detector drops pooled objects at random")
	}
	for _, flush := range []store.FlushDiskType{store.AsyncFlush, store.SyncFlush} {
		for _, form := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
			t.Run(fmt.Sprintf("%v/%v", flush, form), func(t *testing.T) {
				// Timers, background goroutines and each fsync allocate a little; per message over
				// 5000 that is well under the limit, and one allocation per send is far over it.
				if got := sendAllocs(t, flush, form, 5000); got > 0.2 {
					t.Errorf("%.2f allocations per send, want none", got)
				}
			})
		}
	}
}

func BenchmarkSendAllocs(b *testing.B) {
	for _, flush := range []store.FlushDiskType{store.AsyncFlush, store.SyncFlush} {
		for _, form := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
			b.Run(fmt.Sprintf("%v/%v", flush, form), func(b *testing.B) {
				b.ReportMetric(sendAllocs(b, flush, form, max(b.N, 1000)), "allocs/msg")
			})
		}
	}
}
