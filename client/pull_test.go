package client

import (
	"fmt"
	"slices"
	"testing"

	"github.com/apogeemq/apogee/message"
)

func TestAllocateAverage(t *testing.T) {
	qs := make([]MessageQueue, 10)
	for i := range qs {
		qs[i] = MessageQueue{Topic: "T", BrokerName: "b", QueueID: int32(i)}
	}
	ids := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprint("c", i))
		}
		return out
	}
	for _, tc := range []struct {
		consumers int
		sizes     []int
	}{
		{1, []int{10}}, {3, []int{4, 3, 3}}, {4, []int{3, 3, 2, 2}}, {10, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{12, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}},
	} {
		var all []MessageQueue
		for i, id := range ids(tc.consumers) {
			got := allocateAverage(qs, ids(tc.consumers), id)
			if len(got) != tc.sizes[i] {
				t.Fatalf("%d consumers: c%d got %d queues, want %d", tc.consumers, i, len(got), tc.sizes[i])
			}
			all = append(all, got...)
		}
		if !slices.Equal(all, qs) {
			t.Fatalf("%d consumers: allocation %v does not cover the queues in order", tc.consumers, all)
		}
	}
	if got := allocateAverage(qs, ids(2), "stranger"); got != nil {
		t.Fatalf("a consumer not in the list got %v", got)
	}
}

func TestAllocateStrategies(t *testing.T) {
	var qs []MessageQueue
	for _, b := range []string{"broker-a", "broker-b"} {
		for i := range 8 {
			qs = append(qs, MessageQueue{Topic: "T", BrokerName: b, QueueID: int32(i)})
		}
	}
	ids := []string{"10.0.0.1@1", "10.0.0.2@1", "10.0.0.3@1"}
	for name, s := range map[string]AllocateStrategy{"average": AllocateAveragely(), "round-robin": AllocateRoundRobin(),
		"consistent-hash": AllocateConsistentHash(0)} {
		owner := map[MessageQueue]string{}
		for _, id := range ids {
			for _, q := range s.Allocate(qs, ids, id) {
				if prev, dup := owner[q]; dup {
					t.Fatalf("%s: %v given to %s and %s", name, q, prev, id)
				}
				owner[q] = id
			}
		}
		if len(owner) != len(qs) {
			t.Fatalf("%s: %d of %d queues allocated", name, len(owner), len(qs))
		}
		if got := s.Allocate(qs, ids, "stranger"); len(got) != 0 {
			t.Fatalf("%s: a non-member got %v", name, got)
		}
	}
	rr := AllocateRoundRobin().Allocate(qs, ids, ids[1])
	if len(rr) != 5 || rr[0] != qs[1] || rr[1] != qs[4] {
		t.Fatalf("round robin: %v", rr)
	}
	// Consistent hashing moves only the leaving member's queues.
	ch := AllocateConsistentHash(10)
	before := map[MessageQueue]string{}
	for _, id := range ids {
		for _, q := range ch.Allocate(qs, ids, id) {
			before[q] = id
		}
	}
	for _, id := range ids[:2] {
		for _, q := range ch.Allocate(qs, ids[:2], id) {
			if before[q] != id && before[q] != ids[2] {
				t.Fatalf("%v moved from %s to %s although %s stayed", q, before[q], id, before[q])
			}
		}
	}
}

func TestProcessQueue(t *testing.T) {
	q := newProcessQueue(MessageQueue{Topic: "T", BrokerName: "b"})
	if _, ok := q.commitPoint(); ok {
		t.Fatal("a queue never pulled has a commit point")
	}
	var msgs []*message.Message
	for off := range int64(5) {
		msgs = append(msgs, &message.Message{QueueOffset: 10 + off, Body: []byte("xx")})
	}
	q.add(msgs, 15)
	if off, _ := q.commitPoint(); off != 10 {
		t.Fatalf("commit point %d with 10..14 in flight", off)
	}
	if off, _ := q.remove(12); off != 10 {
		t.Fatalf("after 12: %d", off)
	}
	if off, _ := q.remove(10); off != 11 {
		t.Fatalf("after 10: %d", off)
	}
	if !q.full(3, 1<<20, 0) || q.full(4, 1<<20, 0) || !q.full(100, 6, 0) {
		t.Fatal("message and byte limits")
	}
	if !q.full(100, 1<<20, 4) || q.full(100, 1<<20, 5) {
		t.Fatal("span limit: 11 in flight, next 15")
	}
	for _, off := range []int64{11, 13, 14} {
		q.remove(off)
	}
	if off, _ := q.commitPoint(); off != 15 {
		t.Fatalf("all consumed: %d", off)
	}
	q.drop()
	if _, ok := q.remove(99); ok {
		t.Fatal("a dropped queue still commits")
	}
}
