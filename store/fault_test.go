package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/errorfs"
)

func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	toggle := &errorfs.Toggle{}
	toggle.Fail(errorfs.OpMap, errorfs.Injected()) // write with pwrite, so writes can fail
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, toggle)
	s := openTest(t, dir, opts)
	acked := 0
	appendOK := func() {
		t.Helper()
		res := mustAppend(t, s, newMsg("T", 0, make([]byte, 3000), "", "", fmt.Sprint("U", acked)))
		if res.QueueOffset != int64(acked) {
			t.Fatalf("queue offset %d after %d acks", res.QueueOffset, acked)
		}
		acked++
	}
	appendFull := func(why string) {
		t.Helper()
		end := s.MaxCommitLogOffset()
		res, err := s.Append(context.Background(), newMsg("T", 0, make([]byte, 3000), "", "", "X"))
		if res.Status != DiskFull || !errors.Is(err, ErrDiskFull) {
			t.Fatalf("%s: status %v err %v, want DiskFull", why, res.Status, err)
		}
		if s.MaxCommitLogOffset() != end {
			t.Fatalf("%s: log end moved from %d to %d", why, end, s.MaxCommitLogOffset())
		}
	}
	for range 5 {
		appendOK()
	}

	// Usage above the disk-full ratio: refused, reads keep working.
	toggle.SetDiskUsage(&vfs.DiskUsage{Total: 100, Free: 5})
	s.clean()
	appendFull("usage 95%")
	waitDispatched(s)
	var res GetResult
	if err := s.GetMessages("T", 0, 0, 32, nil, &res); err != nil || res.Status != Found || len(res.Records) != 5 {
		t.Fatalf("read while full: %v %v %d", res.Status, err, len(res.Records))
	}
	toggle.SetDiskUsage(&vfs.DiskUsage{Total: 100, Free: 50})
	s.clean()
	appendOK()

	// ENOSPC on the write itself: a torn half record is cut off.
	toggle.Fail(errorfs.OpWrite, errorfs.NoSpace)
	appendFull("write ENOSPC")
	toggle.Fail(errorfs.OpWrite, nil)
	appendFull("until the cleaner sees space")
	s.clean()
	appendOK()

	// ENOSPC when preallocating the next segment.
	toggle.Fail(errorfs.OpAllocate, errorfs.NoSpace)
	for {
		res, err := s.Append(context.Background(), newMsg("T", 0, make([]byte, 3000), "", "", fmt.Sprint("U", acked)))
		if res.Status == DiskFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		acked++
	}
	toggle.Fail(errorfs.OpAllocate, nil)
	s.clean()
	appendOK()
	if s.MaxCommitLogOffset() < opts.SegmentSize {
		t.Fatal("test did not roll a segment")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, testOptions())
	defer s.Close()
	if got := s.MaxOffset("T", 0); got != int64(acked) {
		t.Fatalf("after reopen %d messages, acknowledged %d", got, acked)
	}
	for off := int64(0); off < int64(acked); off = res.NextBeginOffset {
		if err := s.GetMessages("T", 0, off, 32, nil, &res); err != nil || res.Status != Found {
			t.Fatalf("@%d: %v %v", off, res.Status, err)
		}
	}
}

func TestFsyncFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	toggle := &errorfs.Toggle{}
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, toggle)
	opts.FlushDiskType = SyncFlush
	s := openTest(t, dir, opts)
	for i := range 3 {
		mustAppend(t, s, newMsg("T", 0, []byte("ok"), "", "", fmt.Sprint("U", i)))
	}
	toggle.Fail(errorfs.OpSync, errorfs.Injected())
	res, err := s.Append(context.Background(), newMsg("T", 0, []byte("lost?"), "", "", "L"))
	if res.Status != ServiceNotAvailable || !errors.Is(err, ErrWritesStopped) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("status %v err %v", res.Status, err)
	}
	toggle.Fail(errorfs.OpSync, nil)
	syncs := toggle.Count(errorfs.OpSync)
	for range 3 {
		res, err := s.Append(context.Background(), newMsg("T", 0, []byte("after"), "", "", "A"))
		if res.Status != ServiceNotAvailable || !errors.Is(err, ErrWritesStopped) {
			t.Fatalf("after failure: %v %v", res.Status, err)
		}
	}
	if err := s.Flush(context.Background()); !errors.Is(err, ErrWritesStopped) {
		t.Fatalf("flush after failure: %v", err)
	}
	if got := toggle.Count(errorfs.OpSync); got != syncs {
		t.Fatalf("fsync retried %d times after failing", got-syncs)
	}
	if err := s.Close(); !errors.Is(err, ErrWritesStopped) {
		t.Fatalf("close: %v", err)
	}
	s = openTest(t, dir, testOptions())
	defer s.Close()
	if s.Recovery().Clean {
		t.Fatal("a store stopped by an fsync error reopened as clean")
	}
	for i := range 3 {
		if m, err := s.QueryMessages("T", fmt.Sprint("U", i), 1, 0, time.Now().UnixMilli()+1000); err != nil || len(m) != 1 {
			t.Fatalf("acknowledged U%d: %v %d", i, err, len(m))
		}
	}
	mustAppend(t, s, newMsg("T", 0, []byte("again"), "", "", ""))
}

func TestSyncFlushTimeout(t *testing.T) {
	release := make(chan struct{})
	blocking := errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if op == errorfs.OpSync {
			<-release
		}
		return nil
	})
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, blocking)
	opts.FlushDiskType = SyncFlush
	opts.SyncFlushTimeout = 30 * time.Millisecond
	// Retention runs throughout, every hour of the day: while the fsync stalls it must not hold up
	// the appender (it did when it queued for the log's write lock behind the fsync's read lock).
	opts.DeleteWhen = "0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23"
	opts.CleanInterval = time.Millisecond
	close(release) // let Open's syncs through
	s := openTest(t, t.TempDir(), opts)
	release = make(chan struct{})
	res, err := s.Append(context.Background(), newMsg("T", 0, []byte("slow"), "", "", ""))
	if res.Status != FlushDiskTimeout || !errors.Is(err, ErrFlushTimeout) || res.CommitLogOffset != 0 {
		t.Fatalf("status %v err %v", res.Status, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, _ := s.Append(ctx, newMsg("T", 0, []byte("cancelled"), "", "", "")); res.Status != FlushDiskTimeout {
		t.Fatalf("cancelled context: %v", res.Status)
	}
	close(release)
	s.Close()
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	toggle := &errorfs.Toggle{}
	now := time.Date(2026, 11, 22, 4, 0, 0, 0, time.Local)
	var clock atomic.Pointer[time.Time]
	setClock := func(t time.Time) { clock.Store(&t) }
	setClock(now)
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, toggle)
	opts.Now = func() time.Time { return *clock.Load() }
	opts.FileReservedTime = time.Hour
	toggle.SetDiskUsage(&vfs.DiskUsage{Total: 100, Free: 50}) // not the host's disk, which may be busy
	s := openTest(t, dir, opts)
	defer s.Close()
	n := 0
	// Writing in the fifth segment. Not counted by segments: the
	// prefaulter creates the next one ahead, concurrently.
	for s.MaxCommitLogOffset() < 4*opts.SegmentSize {
		mustAppend(t, s, newMsg("T", int32(n%2), make([]byte, 2000), "", "", fmt.Sprint("U", n)))
		n++
	}
	for range 4 { // both queues get messages in the newest segment
		mustAppend(t, s, newMsg("T", int32(n%2), make([]byte, 2000), "", "", fmt.Sprint("U", n)))
		n++
	}
	waitDispatched(s)

	// Not expired yet (files were just written): nothing goes.
	setClock(time.Now())
	s.clean()
	if s.MinCommitLogOffset() != 0 {
		t.Fatal("deleted unexpired segments")
	}
	// Expired, but not the delete hour and disk not busy: nothing goes.
	later := time.Now().Add(2 * time.Hour)
	if later.Hour() == 4 {
		later = later.Add(time.Hour)
	}
	setClock(later)
	s.clean()
	if s.MinCommitLogOffset() != 0 {
		t.Fatal("deleted outside deleteWhen")
	}
	// Disk above the high-water mark: expired segments go at any hour.
	toggle.SetDiskUsage(&vfs.DiskUsage{Total: 100, Free: 20})
	s.clean()
	min, max := s.MinCommitLogOffset(), s.MaxCommitLogOffset()
	left := 0 // segments holding messages: the prefaulter may have created the next one ahead
	s.log.mu.RLock()
	for _, seg := range s.log.mu.segments {
		if seg.start < max {
			left++
		}
	}
	s.log.mu.RUnlock()
	if min != 4*opts.SegmentSize || left != 1 {
		t.Fatalf("min offset %d, %d segments left", min, left)
	}
	var res GetResult
	for qid := range int32(2) {
		cqMin := s.MinOffset("T", qid)
		if cqMin == 0 || s.MaxOffset("T", qid) < cqMin {
			t.Fatalf("queue %d not trimmed: min %d", qid, cqMin)
		}
		if err := s.GetMessages("T", qid, 0, 32, nil, &res); err != nil || res.Status != OffsetTooSmall || res.NextBeginOffset != cqMin {
			t.Fatalf("old offset: %v next %d", res.Status, res.NextBeginOffset)
		}
		if err := s.GetMessages("T", qid, cqMin, 32, nil, &res); err != nil || res.Status != Found || res.Records[0].CommitLogOffset < min {
			t.Fatalf("first kept message: %v %v", res.Status, err)
		}
	}
	if got, _ := s.QueryMessages("T", "U0", 1, 0, later.UnixMilli()); len(got) != 0 {
		t.Fatal("query found a deleted message")
	}
	if _, err := s.LookupMessage(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of deleted offset: %v", err)
	}
	// Writes continue after deletion, and the store reopens trimmed.
	mustAppend(t, s, newMsg("T", 0, []byte("after"), "", "", ""))
}

// TestDiskFullConsumeQueue fills the disk under the consume queues: the
// entries stay readable from memory, the checkpoint does not claim them,
// appends are refused, and all resume when space returns.
func TestDiskFullConsumeQueue(t *testing.T) {
	dir := t.TempDir()
	toggle := &errorfs.Toggle{}
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, toggle)
	opts.CheckpointInterval = time.Hour // checkpoints only when the test says
	s := openTest(t, dir, opts)
	defer s.Close()
	checkpointed := func() format.Checkpoint {
		t.Helper()
		b, err := readWhole(s, checkpointFile)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := format.DecodeCheckpoint(b)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	mustAppend(t, s, newMsg("T", 0, []byte("a"), "", "", ""))
	waitDispatched(s)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	toggle.Fail(errorfs.OpWrite, errorfs.NoSpace) // the commit log is mapped; this hits the consume queue
	b := mustAppend(t, s, newMsg("T", 0, []byte("b"), "", "", ""))
	waitDispatched(s)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var get GetResult
	if err := s.GetMessages("T", 0, 0, 32, nil, &get); err != nil || len(get.Records) != 2 {
		t.Fatalf("read before the write: %v %v %d", get.Status, err, len(get.Records))
	}
	if err := s.checkpoint(); !isNoSpace(err) {
		t.Fatalf("checkpoint: %v, want ENOSPC", err)
	}
	if cp := checkpointed(); cp.DispatchDurable > b.CommitLogOffset {
		t.Fatalf("checkpoint claims %d, entry of %d is not written", cp.DispatchDurable, b.CommitLogOffset)
	}
	if s.MaxOffset("T", 0) != 2 || !s.Stats().DiskFull || s.Stats().Stopped {
		t.Fatalf("max %d stats %+v", s.MaxOffset("T", 0), s.Stats())
	}
	if err := s.GetMessages("T", 0, 1, 32, nil, &get); err != nil || len(get.Records) != 1 || get.Records[0].CommitLogOffset != b.CommitLogOffset {
		t.Fatalf("read while full: %v %v %d", get.Status, err, len(get.Records))
	}
	if res, _ := s.Append(context.Background(), newMsg("T", 0, []byte("c"), "", "", "")); res.Status != DiskFull {
		t.Fatalf("append while full: %v", res.Status)
	}
	toggle.Fail(errorfs.OpWrite, nil)
	toggle.SetDiskUsage(&vfs.DiskUsage{Total: 100, Free: 50})
	s.clean()
	res := mustAppend(t, s, newMsg("T", 0, []byte("d"), "", "", ""))
	waitDispatched(s)
	if res.QueueOffset != 2 || s.MaxOffset("T", 0) != 3 {
		t.Fatalf("after space returned: offset %d max %d", res.QueueOffset, s.MaxOffset("T", 0))
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if cp := checkpointed(); cp.DispatchDurable != s.MaxCommitLogOffset() {
		t.Fatalf("checkpoint at %d, log ends at %d", cp.DispatchDurable, s.MaxCommitLogOffset())
	}
	// What the checkpoint claims is in the files, not only in memory.
	s.Close()
	s = openTest(t, dir, opts)
	if s.Recovery().From != s.Recovery().To || s.MaxOffset("T", 0) != 3 {
		t.Fatalf("reopened: %+v max %d", s.Recovery(), s.MaxOffset("T", 0))
	}
	s.Close()
}

// TestAppendThen: under SyncFlush the callback runs once an fsync covers the message (many
// concurrent appends share fsyncs), after SyncFlushTimeout when the fsync stalls, and with the
// error once an fsync fails; under AsyncFlush it runs before AppendThen returns.
func TestAppendThen(t *testing.T) {
	release := make(chan struct{})
	var stall, failSync atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op, path string) error {
		if op == errorfs.OpSync && stall.Load() {
			<-release
		}
		if op == errorfs.OpSync && failSync.Load() {
			return errorfs.Injected()
		}
		return nil
	})
	opts := testOptions()
	opts.FS = errorfs.Wrap(vfs.Default, inj)
	opts.FlushDiskType = SyncFlush
	opts.SyncFlushTimeout = 200 * time.Millisecond
	s := openTest(t, t.TempDir(), opts)

	type outcome struct {
		res     AppendResult
		err     error
		flushed int64
	}
	const n = 64
	got := make(chan outcome, n)
	for i := range n {
		s.AppendThen(newMsg("T", 0, []byte("x"), "", "", fmt.Sprint("U", i)), func(res AppendResult, err error) {
			got <- outcome{res, err, s.FlushedOffset()}
		})
	}
	for range n {
		o := <-got
		if o.err != nil || o.res.Status != PutOK || o.flushed < o.res.CommitLogOffset+int64(o.res.WroteBytes) {
			t.Fatalf("outcome %+v %v, flushed to %d", o.res, o.err, o.flushed)
		}
	}

	stall.Store(true)
	begin := time.Now()
	s.AppendThen(newMsg("T", 0, []byte("slow"), "", "", "S"), func(res AppendResult, err error) {
		got <- outcome{res, err, 0}
	})
	if o := <-got; o.res.Status != FlushDiskTimeout || !errors.Is(o.err, ErrFlushTimeout) {
		t.Fatalf("stalled fsync: %v %v", o.res.Status, o.err)
	}
	if d := time.Since(begin); d < opts.SyncFlushTimeout {
		t.Fatalf("timed out after %s, before SyncFlushTimeout", d)
	}
	failSync.Store(true)
	s.AppendThen(newMsg("T", 0, []byte("doomed"), "", "", "D"), func(res AppendResult, err error) {
		got <- outcome{res, err, 0}
	})
	stall.Store(false)
	close(release) // the stalled fsync returns; the next one fails
	if o := <-got; o.res.Status != ServiceNotAvailable || !errors.Is(o.err, ErrWritesStopped) {
		t.Fatalf("failed fsync: %v %v", o.res.Status, o.err)
	}
	s.Close()

	async := openTest(t, t.TempDir(), testOptions())
	defer async.Close()
	called := false
	async.AppendThen(newMsg("T", 0, []byte("a"), "", "", "A"), func(res AppendResult, err error) {
		called = err == nil && res.Status == PutOK
	})
	if !called {
		t.Fatal("AsyncFlush: callback not run before AppendThen returned")
	}
}
