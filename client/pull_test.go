package client

import (
	"fmt"
	"slices"
	"testing"
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
