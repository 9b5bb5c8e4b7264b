package store

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaultsAndRoundTrip(t *testing.T) {
	o := (&Options{}).EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	text := o.String()
	for _, want := range []string{"mappedFileSizeCommitLog=1073741824", "flushDiskType=ASYNC_FLUSH", "syncFlushTimeout=5000",
		"fileReservedTime=72", "deleteWhen=04", "diskSpaceWarningLevelRatio=90", "mappedFileSizeConsumeQueue=6000000"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("String() lacks %s", want)
		}
	}
	var p Options
	if err := p.Parse("# comment\n\n" + strings.ReplaceAll(text, "ASYNC_FLUSH", "SYNC_FLUSH")); err != nil {
		t.Fatal(err)
	}
	p.EnsureDefaults()
	if p.FlushDiskType != SyncFlush || p.String() != strings.ReplaceAll(text, "ASYNC_FLUSH", "SYNC_FLUSH") {
		t.Fatalf("round trip:\n%s", p.String())
	}
	if p.FileReservedTime != 72*time.Hour || p.FlushLeastBytes != 16<<10 || p.DiskForceCleanRatio != 0.85 {
		t.Fatalf("parsed %+v", p)
	}
	if err := p.Parse("brokerName=b"); err == nil {
		t.Fatal("unknown key accepted")
	}
	if err := p.Parse("flushDiskType=SOMETIMES"); err == nil {
		t.Fatal("bad flush type accepted")
	}
	bad := (&Options{SegmentSize: 100, DiskFullRatio: 0.5}).EnsureDefaults()
	if err := bad.Validate(); err == nil {
		t.Fatal("bad options validated")
	}
}
