package client

import (
	"math/rand/v2"
	"testing"

	"github.com/apogeemq/apogee/message"
)

// TestProcessQueueCommitPoint: in any removal order, the commit point is the smallest offset still
// in flight, or the offset after the last pulled one; offsets skipped by a pull (filtered by tag)
// are not waited for.
func TestProcessQueueCommitPoint(t *testing.T) {
	for round := range 50 {
		q := newProcessQueue(MessageQueue{Topic: "T"})
		inflight := map[int64]bool{}
		next := int64(round) // pulls start anywhere
		for range 5 {
			var msgs []*message.Message
			for range rand.IntN(20) {
				if rand.IntN(4) > 0 { // the rest are gaps
					msgs = append(msgs, &message.Message{QueueOffset: next, Body: []byte("x")})
					inflight[next] = true
				}
				next++
			}
			q.add(msgs, next)
		}
		for len(inflight) > 0 {
			var offs []int64
			for off := range inflight {
				offs = append(offs, off)
			}
			off := offs[rand.IntN(len(offs))]
			delete(inflight, off)
			want := next
			for o := range inflight {
				want = min(want, o)
			}
			if got, ok := q.remove(off); !ok || got != want {
				t.Fatalf("round %d: after removing %d the commit point is %d, want %d", round, off, got, want)
			}
		}
	}
}
