package store

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/apogeemq/apogee/message"
)

var bornHost = netip.MustParseAddrPort("10.0.0.2:50000")

// testOptions are small: 64 KiB segments, 100-entry consume-queue files,
// a small index.
func testOptions() *Options {
	return &Options{
		SegmentSize:      64 << 10,
		CQEntriesPerFile: 100,
		MaxMessageSize:   16 << 10,
		IndexSlots:       101,
		IndexEntries:     400,
		FlushInterval:    5 * time.Millisecond,
	}
}

func openTest(t testing.TB, dir string, o *Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newMsg(topic string, qid int32, body []byte, tag, keys, uniq string) *message.Message {
	m := &message.Message{Topic: topic, QueueID: qid, Body: body, BornHost: bornHost, BornTimestamp: 1}
	if tag != "" {
		m.SetProperty(message.PropertyTags, tag)
	}
	if keys != "" {
		m.SetProperty(message.PropertyKeys, keys)
	}
	if uniq != "" {
		m.SetProperty(message.PropertyUniqKey, uniq)
	}
	return m
}

// waitDispatched blocks until every appended record is in the queues.
func waitDispatched(s *Store) { s.waitDispatched() }

func mustAppend(t testing.TB, s *Store, m *message.Message) AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), m)
	if err != nil || res.Status != PutOK {
		t.Fatalf("append: %v %v", res.Status, err)
	}
	return res
}

func TestAppendGetBasic(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	for i := range 10 {
		res := mustAppend(t, s, newMsg("T", 1, fmt.Appendf(nil, "body-%d", i), "A", "k1 k2", fmt.Sprintf("U%d", i)))
		if res.QueueOffset != int64(i) {
			t.Fatalf("queue offset %d, want %d", res.QueueOffset, i)
		}
	}
	waitDispatched(s)
	var res GetResult
	if err := s.GetMessages("T", 1, 0, 32, nil, &res); err != nil || res.Status != Found || len(res.Records) != 10 {
		t.Fatalf("get: %v %v %d", err, res.Status, len(res.Records))
	}
	msgs, err := message.DecodeRecords(res.Body)
	if err != nil || len(msgs) != 10 || string(msgs[3].Body) != "body-3" || msgs[3].QueueOffset != 3 {
		t.Fatalf("decode: %v %d", err, len(msgs))
	}
	m, err := s.LookupMessage(msgs[5].CommitLogOffset)
	if err != nil || string(m.Body) != "body-5" {
		t.Fatalf("lookup: %v", err)
	}
	found, err := s.QueryMessages("T", "U7", 10, 0, time.Now().UnixMilli()+1000)
	if err != nil || len(found) != 1 || string(found[0].Body) != "body-7" {
		t.Fatalf("query uniq: %v %d", err, len(found))
	}
	if found, _ := s.QueryMessages("T", "k2", 32, 0, time.Now().UnixMilli()+1000); len(found) != 10 {
		t.Fatalf("query key: %d", len(found))
	}
	if ts, err := s.EarliestMessageTime("T", 1); err != nil || ts != msgs[0].StoreTimestamp {
		t.Fatalf("earliest time %d %v", ts, err)
	}
	raw := make([]byte, 300)
	if n, err := s.ReadCommitLog(0, raw); err != nil || n != 300 || !bytes.Equal(raw[:n], res.Body[:n]) {
		t.Fatalf("ReadCommitLog: %d %v", n, err)
	}
	if _, err := s.ReadCommitLog(s.MaxCommitLogOffset(), raw); err != ErrNotFound {
		t.Fatalf("ReadCommitLog at end: %v", err)
	}
	if _, err := Open(t.TempDir(), &Options{SegmentSize: 10}); err == nil {
		t.Fatal("Open accepted invalid options")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v", err)
	}
	if res, err := s.Append(context.Background(), newMsg("T", 1, nil, "", "", "")); err != ErrClosed || res.Status != ServiceNotAvailable {
		t.Fatalf("append after close: %v %v", res.Status, err)
	}
	s = openTest(t, dir, testOptions())
	defer s.Close()
	if !s.Recovery().Clean || s.MaxOffset("T", 1) != 10 {
		t.Fatalf("reopen: %+v max %d", s.Recovery(), s.MaxOffset("T", 1))
	}
	res2 := mustAppend(t, s, newMsg("T", 1, []byte("x"), "", "", ""))
	if res2.QueueOffset != 10 {
		t.Fatalf("after reopen queue offset %d", res2.QueueOffset)
	}
}

func TestPreparedMessagesSkipConsumeQueue(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	defer s.Close()
	mustAppend(t, s, newMsg("T", 0, []byte("a"), "", "", ""))
	half := newMsg("T", 0, []byte("prepared"), "", "", "H1")
	half.SysFlag = message.TransactionPreparedType
	if res := mustAppend(t, s, half); res.QueueOffset != 0 {
		t.Fatalf("prepared record got queue offset %d", res.QueueOffset)
	}
	commit := newMsg("T", 0, []byte("commit"), "", "", "")
	commit.SysFlag = message.TransactionCommitType
	commit.PreparedTransactionOffset = half.CommitLogOffset
	if res := mustAppend(t, s, commit); res.QueueOffset != 1 {
		t.Fatalf("commit record got queue offset %d", res.QueueOffset)
	}
	waitDispatched(s)
	if got := s.MaxOffset("T", 0); got != 2 {
		t.Fatalf("max offset %d", got)
	}
	if m, err := s.LookupMessage(half.CommitLogOffset); err != nil || string(m.Body) != "prepared" {
		t.Fatalf("half message by offset: %v", err)
	}
	if res, err := s.AppendBatch(context.Background(), []*message.Message{half}); res.Status != MessageIllegal {
		t.Fatalf("prepared batch: %v %v", res.Status, err)
	}
}

// TestGetMessagesAllocatesNothing is the pull-path promise: a warm
// GetResult reads a batch of 32 messages without allocating.
func TestGetMessagesAllocatesNothing(t *testing.T) {
	for _, flush := range []FlushDiskType{AsyncFlush, SyncFlush} { // mapped and pread reads
		t.Run(flush.String(), func(t *testing.T) {
			opts := testOptions()
			opts.FlushDiskType = flush
			s := openTest(t, t.TempDir(), opts)
			defer s.Close()
			for i := range 100 {
				mustAppend(t, s, newMsg("T", 0, make([]byte, 500), "A", "", fmt.Sprint("U", i)))
			}
			waitDispatched(s)
			var res GetResult
			s.GetMessages("T", 0, 0, 32, nil, &res)
			off := int64(0)
			allocs := testing.AllocsPerRun(50, func() {
				if err := s.GetMessages("T", 0, off, 32, func(int64) bool { return true }, &res); err != nil || len(res.Records) != 32 {
					t.Fatal(err, len(res.Records))
				}
				off = (off + 7) % 60
			})
			if allocs != 0 {
				t.Fatalf("%.1f allocations per 32-message read", allocs)
			}
		})
	}
}

// TestAppendCopiesWhatItKeeps appends messages whose topic and properties are memory the caller
// overwrites as soon as Append returns, as the broker's send path does: queues, queue names and
// index keys must be the appended ones.
func TestAppendCopiesWhatItKeeps(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	var mem [128]byte
	view := func(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
	const n = 40
	for i := range n {
		topic := fmt.Appendf(mem[:0], "T%d", i%2)
		props := fmt.Appendf(mem[len(topic):len(topic)], "KEYS\x01key-%d\x02UNIQ_KEY\x01U%d", i, i)
		m := &message.Message{Topic: view(topic), QueueID: 0, Body: fmt.Appendf(nil, "body-%d", i), BornHost: bornHost,
			BornTimestamp: 1, EncodedProperties: view(props)}
		mustAppend(t, s, m)
		for j := range mem {
			mem[j] = 'x'
		}
	}
	waitDispatched(s)
	for q := range 2 {
		if got := s.MaxOffset(fmt.Sprintf("T%d", q), 0); got != n/2 {
			t.Errorf("queue T%d/0 has %d messages, want %d", q, got, n/2)
		}
	}
	now := time.Now().UnixMilli() + 1000
	for i := range n {
		topic := fmt.Sprintf("T%d", i%2)
		for _, key := range []string{fmt.Sprintf("key-%d", i), fmt.Sprintf("U%d", i)} {
			found, err := s.QueryMessages(topic, key, 4, 0, now)
			if err != nil || len(found) != 1 || string(found[0].Body) != fmt.Sprintf("body-%d", i) {
				t.Fatalf("%s %s: %d found, %v", topic, key, len(found), err)
			}
		}
	}
	s.Close()
	// The queues' names on disk, and their offsets after a restart, are the appended ones too.
	s = openTest(t, dir, testOptions())
	defer s.Close()
	for q := range 2 {
		if got := s.MaxOffset(fmt.Sprintf("T%d", q), 0); got != n/2 {
			t.Errorf("after reopening, queue T%d/0 has %d messages, want %d", q, got, n/2)
		}
	}
	if res := mustAppend(t, s, newMsg("T1", 0, []byte("next"), "", "", "")); res.QueueOffset != n/2 {
		t.Errorf("next append to T1/0 got queue offset %d, want %d", res.QueueOffset, n/2)
	}
}
