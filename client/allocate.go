package client

import (
	"crypto/md5"
	"fmt"
	"slices"
	"strconv"
)

// AllocateStrategy shares a topic's queues among the members of a consumer group. Every member runs
// it with the same inputs and must get a disjoint share, so it must be deterministic. Allocate gets
// the queues sorted by broker and queue id and the member ids sorted, me among them; it is called
// from one goroutine at a time.
type AllocateStrategy interface {
	Allocate(queues []MessageQueue, ids []string, me string) []MessageQueue
}

// AllocateStrategyFunc adapts a function to AllocateStrategy.
type AllocateStrategyFunc func(queues []MessageQueue, ids []string, me string) []MessageQueue

// Allocate calls f.
func (f AllocateStrategyFunc) Allocate(queues []MessageQueue, ids []string, me string) []MessageQueue {
	return f(queues, ids, me)
}

// AllocateAveragely gives each member a contiguous range of queues, the first members one more when
// they do not divide evenly (RocketMQ's AllocateMessageQueueAveragely, the default).
func AllocateAveragely() AllocateStrategy { return AllocateStrategyFunc(allocateAverage) }

// AllocateRoundRobin deals the queues to the members in turn (RocketMQ's
// AllocateMessageQueueAveragelyByCircle), which spreads each broker's queues over the members.
func AllocateRoundRobin() AllocateStrategy {
	return AllocateStrategyFunc(func(queues []MessageQueue, ids []string, me string) []MessageQueue {
		idx := slices.Index(ids, me)
		if idx < 0 {
			return nil
		}
		var out []MessageQueue
		for i := idx; i < len(queues); i += len(ids) {
			out = append(out, queues[i])
		}
		return out
	})
}

// AllocateConsistentHash places members on a hash ring with virtualNodes points each and gives every
// queue to the member that follows it (RocketMQ's AllocateMessageQueueConsistentHash with its MD5
// ring, so Go and Java members of one group agree). A member joining or leaving moves only its
// neighbours' queues. virtualNodes <= 0 means 10, RocketMQ's default.
func AllocateConsistentHash(virtualNodes int) AllocateStrategy {
	if virtualNodes <= 0 {
		virtualNodes = 10
	}
	return AllocateStrategyFunc(func(queues []MessageQueue, ids []string, me string) []MessageQueue {
		if !slices.Contains(ids, me) {
			return nil
		}
		type point struct {
			hash int64
			id   string
		}
		var ring []point
		for _, id := range ids {
			for i := range virtualNodes {
				ring = append(ring, point{md5Hash(id + "-" + strconv.Itoa(i)), id})
			}
		}
		// Java keeps the ring in a TreeMap: of points with equal hashes the one put last stays.
		slices.SortStableFunc(ring, func(a, b point) int { return cmpInt64(a.hash, b.hash) })
		dedup := ring[:0]
		for _, p := range ring {
			if n := len(dedup); n > 0 && dedup[n-1].hash == p.hash {
				dedup[n-1] = p
				continue
			}
			dedup = append(dedup, p)
		}
		ring = dedup
		var out []MessageQueue
		for _, q := range queues {
			h := md5Hash(fmt.Sprintf("MessageQueue [topic=%s, brokerName=%s, queueId=%d]", q.Topic, q.BrokerName, q.QueueID))
			i, _ := slices.BinarySearchFunc(ring, h, func(p point, h int64) int { return cmpInt64(p.hash, h) })
			if i == len(ring) {
				i = 0
			}
			if ring[i].id == me {
				out = append(out, q)
			}
		}
		return out
	})
}

// md5Hash is RocketMQ's ConsistentHashRouter.MD5Hash: the first 4 bytes of the MD5 digest as an
// unsigned big-endian number.
func md5Hash(key string) int64 {
	sum := md5.Sum([]byte(key))
	return int64(sum[0])<<24 | int64(sum[1])<<16 | int64(sum[2])<<8 | int64(sum[3])
}

// WithAllocateStrategy sets how a subscribing consumer's group shares queues. Every member of a group
// must use the same strategy. Default AllocateAveragely.
func WithAllocateStrategy(s AllocateStrategy) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) {
		if s != nil {
			c.allocate = s
		}
	})
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
