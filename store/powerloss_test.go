package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/crashfs"
)

// powerLossRound runs appenders against a store on a crashfs, cuts the
// power after d, and returns what was acknowledged.
func powerLossRound(t *testing.T, dir string, opts *Options, seed int, d time.Duration) []ack {
	t.Helper()
	fs := crashfs.Wrap(vfs.Default)
	fs.NoMap = true
	opts.FS = fs
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var acks []ack
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(g)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				uniq := fmt.Sprintf("p%dg%dn%d", seed, g, n)
				m := newMsg(fmt.Sprintf("T%d", r.IntN(3)), int32(r.IntN(2)), crashBody(uniq, r.IntN(2000)), "", "", uniq)
				res, err := s.Append(context.Background(), m)
				if err != nil {
					continue
				}
				mu.Lock()
				acks = append(acks, ack{m.Topic, m.QueueID, res.QueueOffset, res.CommitLogOffset, uniq, len(m.Body)})
				mu.Unlock()
			}
		})
	}
	<-time.After(d)
	if err := fs.Crash(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	s.crash()
	return acks
}

// TestPowerLossSyncFlush cuts the power (every unsynced write is undone)
// while SYNC_FLUSH appenders run: no acknowledged message may be lost.
func TestPowerLossSyncFlush(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	var all []ack
	for round := range 5 {
		opts := crashOptions()
		all = append(all, powerLossRound(t, dir, opts, round, time.Duration(30+r.IntN(120))*time.Millisecond)...)
		verifyAfterCrash(t, dir, all)
	}
	if len(all) == 0 {
		t.Fatal("nothing acknowledged: the test tests nothing")
	}
	t.Logf("%d acknowledged messages survived 5 power cuts", len(all))
}

// TestPowerLossAsyncFlushLosesASuffix is the negative control: under
// ASYNC_FLUSH a power cut loses recent acknowledged messages (or the
// simulation is not working), and what it loses is a suffix of the log.
func TestPowerLossAsyncFlushLosesASuffix(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 8))
	lostTotal := 0
	var kept []ack
	for round := range 5 {
		opts := crashOptions()
		opts.FlushDiskType = AsyncFlush
		opts.FlushInterval = 100 * time.Millisecond
		opts.FlushLeastBytes = -1
		acks := powerLossRound(t, dir, opts, round, time.Duration(30+r.IntN(120))*time.Millisecond)
		s, err := Open(dir, crashOptions())
		if err != nil {
			t.Fatal(err)
		}
		end := s.MaxCommitLogOffset()
		for _, a := range kept { // survived an earlier cut, then recovery synced them
			if m, err := s.LookupMessage(a.offset); err != nil || m.UniqKey() != a.uniq {
				t.Fatalf("%s survived a cut and was lost later: %v", a.uniq, err)
			}
		}
		for _, a := range acks {
			m, err := s.LookupMessage(a.offset)
			switch {
			case err == nil && m.UniqKey() == a.uniq:
				kept = append(kept, a)
			case a.offset < end:
				t.Fatalf("acknowledged %s at %d lost below the end %d: not a suffix", a.uniq, a.offset, end)
			default:
				lostTotal++
			}
		}
		s.Close()
	}
	if lostTotal == 0 {
		t.Fatal("ASYNC_FLUSH lost nothing in 5 power cuts: the simulation is not cutting anything")
	}
	t.Logf("ASYNC_FLUSH lost %d acknowledged messages, all at the tail", lostTotal)
}
