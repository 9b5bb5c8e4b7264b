package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
)

// FuzzRecoverSegment opens a store whose only segment holds arbitrary
// bytes (a bit-flipped, torn or foreign log): Open must not panic, must
// cut the log at the first bad record, and every message it then serves
// must decode with a good CRC.
func FuzzRecoverSegment(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, testOptions())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 5 {
		mustAppend(f, s, newMsg("T", int32(i%2), []byte(fmt.Sprint("body", i)), "A", "k", fmt.Sprint("U", i)))
	}
	s.Close()
	seg, err := os.ReadFile(filepath.Join(dir, commitLogDir, format.SegmentName(0)))
	if err != nil {
		f.Fatal(err)
	}
	end := 0
	for end < len(seg) && seg[end] != 0 || end < len(seg) && end+4 < len(seg) && seg[end+4] != 0 {
		size, _, _ := message.PeekSize(seg[end:])
		if size <= 0 {
			break
		}
		end += int(size)
	}
	f.Add(seg[:end])
	f.Add(seg[:end/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 60<<10 {
			return
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, commitLogDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, commitLogDir, format.SegmentName(0)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts := testOptions()
		opts.DisableIndex = true
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var res GetResult
		for _, topic := range []string{"T", "U"} {
			for q := range int32(2) {
				for off := s.MinOffset(topic, q); off < s.MaxOffset(topic, q); off = res.NextBeginOffset {
					if err := s.GetMessages(topic, q, off, 32, nil, &res); err != nil {
						t.Fatal(err)
					}
					if _, err := message.DecodeRecords(res.Body); err != nil {
						t.Fatalf("served a bad record: %v", err)
					}
					if res.NextBeginOffset <= off {
						t.Fatalf("no progress at %d (%v)", off, res.Status)
					}
				}
			}
		}
	})
}
