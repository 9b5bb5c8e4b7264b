package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apogeemq/apogee/message"
)

// TestConcurrentAppendAndTail runs SyncFlush appenders against readers that
// tail every queue, and checks that readers only ever see whole records at
// contiguous queue offsets, and in the end every acknowledged message.
func TestConcurrentAppendAndTail(t *testing.T) {
	opts := testOptions()
	opts.FlushDiskType = SyncFlush
	var arrived atomic.Int64
	const appenders, perAppender, queues = 6, 150, 3
	var notify [queues]chan struct{} // long-polling stand-in: readers wait here
	for i := range notify {
		notify[i] = make(chan struct{}, 1)
	}
	opts.Listener.MessageArrived = func(_ string, q int32, _ int64) {
		arrived.Add(1)
		select {
		case notify[q] <- struct{}{}:
		default:
		}
	}
	s := openTest(t, t.TempDir(), opts)
	defer s.Close()
	var acked atomic.Int64
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for i := range perAppender {
				m := newMsg("T", int32((g+i)%queues), fmt.Appendf(nil, "g%d-%d", g, i), "", "", "")
				if _, err := s.Append(context.Background(), m); err != nil {
					t.Error(err)
					return
				}
				acked.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for q := range int32(queues) {
		readers.Go(func() {
			var res GetResult
			next := int64(0)
			for {
				if err := s.GetMessages("T", q, next, 16, nil, &res); err != nil {
					t.Error(err)
					return
				}
				if res.Status == Found {
					msgs, err := message.DecodeRecords(res.Body)
					if err != nil {
						t.Errorf("queue %d: %v", q, err)
						return
					}
					for i, m := range msgs {
						if m.QueueOffset != next+int64(i) {
							t.Errorf("queue %d: offset %d at %d", q, m.QueueOffset, next+int64(i))
							return
						}
					}
					next = res.NextBeginOffset
					continue
				}
				select {
				case <-stop:
					return
				case <-notify[q]:
				}
			}
		})
	}
	wg.Wait()
	waitDispatched(s)
	close(stop)
	readers.Wait()
	total := int64(0)
	for q := range int32(queues) {
		total += s.MaxOffset("T", q)
	}
	if total != acked.Load() || total != appenders*perAppender {
		t.Fatalf("stored %d, acknowledged %d", total, acked.Load())
	}
	if arrived.Load() == 0 {
		t.Fatal("MessageArrived never called")
	}
	if st := s.Stats(); st.CommitLogSyncs == 0 || st.CommitLogFlushed != st.CommitLogWritten {
		t.Fatalf("stats %+v", st)
	}
}
