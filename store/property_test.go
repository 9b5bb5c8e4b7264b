package store

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/apogeemq/apogee/message"
)

// modelMsg is what the naive model remembers of an appended message.
type modelMsg struct {
	body     []byte
	tagsCode int64
	props    map[string]string
	offset   int64 // commit-log offset
	storeTS  int64
}

type model map[queueKey][]modelMsg

// crash stops the store's goroutines and closes its files without the
// clean-shutdown steps, as if the process had died (the page cache keeps
// what was written).
func (s *Store) crash() {
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
	s.closeFiles()
}

func randomMessage(r *rand.Rand, topic string, qid int32, seq int) *message.Message {
	sizes := []int{0, 1, 100, 1000, 4000, 9000}
	body := make([]byte, sizes[r.IntN(len(sizes))]+r.IntN(50))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	tags := []string{"", "A", "B", "TagC"}
	return newMsg(topic, qid, body, tags[r.IntN(len(tags))], fmt.Sprintf("k%d k%d", seq%7, seq), fmt.Sprintf("U%d", seq))
}

func TestPropertyRandomAppendsReadBack(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	dir := t.TempDir()
	opts := testOptions()
	s := openTest(t, dir, opts)
	m := model{}
	seq := 0
	topics := []string{"alpha", "beta", "%RETRY%g1", "t-3"}
	for round := range 6 {
		for range 150 {
			topic, qid := topics[r.IntN(len(topics))], int32(r.IntN(4))
			var msgs []*message.Message
			for range 1 + r.IntN(3)*r.IntN(4) {
				msgs = append(msgs, randomMessage(r, topic, qid, seq))
				seq++
			}
			var res AppendResult
			var err error
			if len(msgs) == 1 && r.IntN(2) == 0 {
				res, err = s.Append(context.Background(), msgs[0])
			} else {
				res, err = s.AppendBatch(context.Background(), msgs)
			}
			if err != nil || res.Status != PutOK {
				t.Fatalf("append: %v %v", res.Status, err)
			}
			k := queueKey{topic, qid}
			if res.QueueOffset != int64(len(m[k])) {
				t.Fatalf("queue offset %d, model has %d", res.QueueOffset, len(m[k]))
			}
			for _, msg := range msgs {
				m[k] = append(m[k], modelMsg{body: msg.Body, tagsCode: msg.TagsCode(), props: msg.Properties,
					offset: msg.CommitLogOffset, storeTS: msg.StoreTimestamp})
			}
		}
		waitDispatched(s)
		checkModel(t, r, s, m)
		switch round % 3 {
		case 0:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		case 1:
			s.crash()
		case 2:
			continue
		}
		s = openTest(t, dir, opts)
		checkModel(t, r, s, m)
	}
	s.Close()
}

// checkModel reads every queue back in random chunks with random filters
// and compares against the model (a naive scan).
func checkModel(t *testing.T, r *rand.Rand, s *Store, m model) {
	t.Helper()
	var res GetResult
	for k, msgs := range m {
		if got := s.MaxOffset(k.topic, k.queueID); got != int64(len(msgs)) {
			t.Fatalf("%v: max offset %d, want %d", k, got, len(msgs))
		}
		codes := []int64{message.TagsCode("A"), message.TagsCode("TagC")}
		for _, filter := range []TagsFilter{nil, func(c int64) bool { return c == codes[0] }, func(c int64) bool { return c == codes[1] }} {
			off := int64(0)
			for off < int64(len(msgs)) {
				max := r.IntN(40)
				if err := s.GetMessages(k.topic, k.queueID, off, max, filter, &res); err != nil {
					t.Fatal(err)
				}
				// Naive: the next matching messages from off.
				var want []int64
				for i := off; i < int64(len(msgs)) && len(want) < 1; i++ {
					if filter == nil || filter(msgs[i].tagsCode) {
						want = append(want, i)
					}
				}
				if len(want) == 0 {
					if res.Status != NoMatchedMessage && res.Status != Found {
						t.Fatalf("%v off %d: status %v", k, off, res.Status)
					}
					if len(res.Records) != 0 {
						t.Fatalf("%v off %d: got records nothing matches", k, off)
					}
				} else if res.Status != Found || res.Records[0].QueueOffset != want[0] {
					t.Fatalf("%v off %d: status %v, first %v, want %d", k, off, res.Status, res.Records, want[0])
				}
				for _, ref := range res.Records {
					mm := msgs[ref.QueueOffset]
					rec := res.Body[ref.Pos : ref.Pos+ref.Size]
					got, _, err := message.DecodeRecord(rec)
					if err != nil {
						t.Fatalf("%v @%d: %v", k, ref.QueueOffset, err)
					}
					if !bytes.Equal(got.Body, mm.body) || !maps.Equal(got.Properties, mm.props) || got.QueueOffset != ref.QueueOffset ||
						got.CommitLogOffset != mm.offset || got.Topic != k.topic || got.QueueID != k.queueID || (filter != nil && !filter(mm.tagsCode)) {
						t.Fatalf("%v @%d: record differs from model", k, ref.QueueOffset)
					}
				}
				if res.NextBeginOffset <= off {
					t.Fatalf("%v: no progress at %d", k, off)
				}
				off = res.NextBeginOffset
			}
		}
		// Offset by time against a linear scan.
		for range 3 {
			ts := msgs[r.IntN(len(msgs))].storeTS + int64(r.IntN(3)) - 1
			want := int64(len(msgs))
			for i, mm := range msgs {
				if mm.storeTS >= ts {
					want = int64(i)
					break
				}
			}
			if got, err := s.OffsetByTime(k.topic, k.queueID, ts); err != nil || got != want {
				t.Fatalf("%v: OffsetByTime(%d) = %d %v, want %d", k, ts, got, err, want)
			}
		}
	}
	if err := s.GetMessages("nope", 0, 0, 1, nil, &res); err != nil || res.Status != NoMatchedLogicQueue {
		t.Fatalf("missing queue: %v", res.Status)
	}
}
