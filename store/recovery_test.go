package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
)

// TestRecoveryTornTail crashes, then damages the last record the way a torn
// write or a bit flip would and leaves garbage after it; recovery must cut
// the log at that record, keep everything before, and accept appends at the
// cut.
func TestRecoveryTornTail(t *testing.T) {
	for _, damage := range []string{"body", "size", "half", "queueoffset"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions()
			s := openTest(t, dir, opts)
			var last AppendResult
			for i := range 30 {
				last = mustAppend(t, s, newMsg("T", int32(i%2), make([]byte, 700), "", "", fmt.Sprint("U", i)))
			}
			waitDispatched(s)
			s.crash()

			seg := filepath.Join(dir, commitLogDir, format.SegmentName(0))
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			pos := last.CommitLogOffset
			switch damage {
			case "body":
				f.WriteAt([]byte{0xFF}, pos+90)
			case "size":
				f.WriteAt([]byte{0x7F}, pos)
			case "half": // only the first half of the record reached the file
				f.WriteAt(make([]byte, last.WroteBytes/2), pos+int64(last.WroteBytes/2))
			case "queueoffset": // BODYCRC does not cover the header
				f.WriteAt([]byte{0x7F}, pos+20+7)
			}
			f.WriteAt([]byte("garbage after the tail"), pos+int64(last.WroteBytes)+100)
			f.Close()

			s = openTest(t, dir, opts)
			defer s.Close()
			info := s.Recovery()
			if info.Clean || info.To != pos || !message.IsCorrupt(info.TornTail) {
				t.Fatalf("recovery %+v, want a cut at %d", info, pos)
			}
			if got := s.MaxOffset("T", 1); got != 14 {
				t.Fatalf("queue 1 max %d, want 14 (its last record was cut)", got)
			}
			if got := s.MaxOffset("T", 0); got != 15 {
				t.Fatalf("queue 0 max %d", got)
			}
			res := mustAppend(t, s, newMsg("T", 1, []byte("new"), "", "", ""))
			if res.CommitLogOffset != pos || res.QueueOffset != 14 {
				t.Fatalf("append after cut at %d/%d", res.CommitLogOffset, res.QueueOffset)
			}
			if m, err := s.LookupMessage(pos); err != nil || string(m.Body) != "new" {
				t.Fatalf("lookup: %v", err)
			}
			// The garbage was zeroed: a crash now recovers cleanly to the new end.
			s.Close()
			os.Remove(filepath.Join(dir, checkpointFile))
			s2 := openTest(t, dir, opts)
			if info := s2.Recovery(); info.TornTail != nil || info.To != res.CommitLogOffset+int64(res.WroteBytes) {
				t.Fatalf("second recovery %+v", info)
			}
			s2.Close()
			s = openTest(t, dir, opts) // for the deferred Close
		})
	}
}

// TestRecoveryDoesNotNotify: records recovery redispatches while Open runs (here: consume-queue
// entries that were only in memory at the crash) are not reported to MessageArrived, whose owner
// is still being built; arrivals after Open are.
func TestRecoveryDoesNotNotify(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	s := openTest(t, dir, opts)
	for i := range 5 {
		mustAppend(t, s, newMsg("T", 0, []byte("x"), "", "", fmt.Sprint("U", i)))
	}
	waitDispatched(s)
	s.crash()

	arrived := make(chan int64, 16)
	var opening atomic.Bool
	opening.Store(true)
	opts.Listener.MessageArrived = func(_ string, _ int32, maxOffset int64) {
		if opening.Load() {
			t.Error("MessageArrived called during Open")
		}
		arrived <- maxOffset
	}
	s = openTest(t, dir, opts)
	opening.Store(false)
	defer s.Close()
	if got := s.MaxOffset("T", 0); got != 5 {
		t.Fatalf("recovered queue max %d, want 5", got)
	}
	mustAppend(t, s, newMsg("T", 0, []byte("y"), "", "", "U5"))
	if got := <-arrived; got != 6 {
		t.Fatalf("arrival after Open reported max %d, want 6", got)
	}
}
