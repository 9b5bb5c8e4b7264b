package store

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/apogeemq/apogee/message"
)

// rssFileKiB returns the process's resident file-backed memory (RssFile).
func rssFileKiB(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseMappedPages: flushed log pages below the newest releaseKeep leave the process's
// resident size, and every message still reads back.
func TestReleaseMappedPages(t *testing.T) {
	opts := testOptions()
	opts.SegmentSize = 16 << 20
	base := rssFileKiB(t)
	s := openTest(t, t.TempDir(), opts)
	defer s.Close()
	body := make([]byte, 8<<10)
	var n int
	for s.MaxCommitLogOffset() < 96<<20 {
		mustAppend(t, s, newMsg("T", 0, body, "", "", fmt.Sprint("U", n)))
		n++
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.log.release(s.FlushedOffset()) // housekeeping does this every second too
	// About 96 MiB written; what stays mapped is the newest releaseKeep (32 MiB), the prefaulted
	// lead (16 MiB) and a little more.
	if grew := rssFileKiB(t) - base; grew > 64<<10 {
		t.Fatalf("RssFile grew by %d MiB writing 96 MiB; want at most 64 MiB mapped", grew>>10)
	}
	waitDispatched(s)
	var res GetResult
	if err := s.GetMessages("T", 0, 0, 32, nil, &res); err != nil || len(res.Records) < 16 {
		t.Fatalf("reading the released start: %d messages, %v", len(res.Records), err)
	}
	msgs, err := message.DecodeRecords(res.Body)
	if err != nil || msgs[0].UniqKey() != "U0" || len(msgs[len(msgs)-1].Body) != len(body) {
		t.Fatalf("released records read back wrong: %v", err)
	}
}
