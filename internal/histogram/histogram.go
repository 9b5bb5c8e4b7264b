// Package histogram records durations in fixed memory and answers quantiles with a bounded relative
// error, for load tools that run for hours (HdrHistogram's idea: exponent buckets, each split
// linearly).
package histogram

import (
	"math/bits"
	"time"
)

// subBuckets is the linear split of each power-of-two range: quantiles are off by at most 1/subBuckets
// (about 3 %).
const (
	subBits    = 5
	subBuckets = 1 << subBits
)

// Histogram counts durations with microsecond resolution. The zero value is ready to use. It is not
// safe for concurrent use.
type Histogram struct {
	counts [64 * subBuckets]uint64
	total  uint64
	sum    time.Duration
	max    time.Duration
}

func index(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - subBits // ≥ 1
	return exp*subBuckets + int(us>>(exp-1)) - subBuckets
}

// lowerBound is the smallest value (µs) that falls into bucket i.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i / subBuckets
	return uint64(i%subBuckets+subBuckets) << (exp - 1)
}

// Record adds one duration (negative durations count as zero).
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[index(uint64(d/time.Microsecond))]++
	h.total++
	h.sum += d
	h.max = max(h.max, d)
}

// Merge adds every count of o.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest duration recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the average duration, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns the duration below which a fraction q (0..1) of the recorded durations fall,
// or 0 when empty. The answer is the lower bound of its bucket, capped by the maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(lowerBound(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}
