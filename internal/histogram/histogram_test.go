package histogram

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreMonotonicAndTight(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<22; us += 1 + us/97 {
		i := index(us)
		if i < prev {
			t.Fatalf("index(%d)=%d after %d", us, i, prev)
		}
		if lb := lowerBound(i); lb > us || float64(us-lb) > float64(us)/subBuckets+1 {
			t.Fatalf("value %d in bucket %d with lower bound %d", us, i, lb)
		}
		prev = i
	}
}

// TestQuantilesAgainstSort checks quantiles against an exact answer from a sorted copy.
func TestQuantilesAgainstSort(t *testing.T) {
	var h Histogram
	var all []time.Duration
	for range 100000 {
		d := time.Duration(rand.ExpFloat64()*2000) * time.Microsecond
		h.Record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.Quantile(q)
		if diff := float64(exact-got) / float64(exact); diff < -0.001 || diff > 0.05 {
			t.Errorf("q%.3f: got %v, exact %v", q, got, exact)
		}
	}
	if h.Max() != all[len(all)-1] || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
	var m Histogram
	m.Merge(&h)
	if m.Quantile(0.5) != h.Quantile(0.5) || m.Mean() != h.Mean() {
		t.Error("merge changed the answer")
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram")
	}
}
