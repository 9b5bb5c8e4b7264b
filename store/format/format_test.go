package format

import (
	"errors"
	"testing"
)

func TestSegmentName(t *testing.T) {
	if got := SegmentName(1 << 30); got != "00000000001073741824" {
		t.Fatal(got)
	}
	for _, bad := range []string{"1073741824", "0000000000107374182x", "-0000000000000000001"} {
		if _, ok := ParseSegmentName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if v, ok := ParseSegmentName("00000000001073741824"); !ok || v != 1<<30 {
		t.Fatal(v, ok)
	}
}

func TestCQUnitRoundTrip(t *testing.T) {
	var b [CQUnitSize]byte
	u := CQUnit{CommitLogOffset: 1<<40 + 5, Size: 1234, TagsCode: -2147483648}
	EncodeCQUnit(b[:], u)
	if got := DecodeCQUnit(b[:]); got != u || !got.Valid() {
		t.Fatalf("%+v", got)
	}
	if (CQUnit{}).Valid() {
		t.Fatal("zero unit is valid")
	}
}

func TestIndexRoundTrip(t *testing.T) {
	var b [IndexHeaderSize]byte
	h := IndexHeader{1, 2, 3, 4, 5, 6}
	EncodeIndexHeader(b[:], h)
	if DecodeIndexHeader(b[:]) != h {
		t.Fatal("header")
	}
	var e [IndexEntrySize]byte
	ent := IndexEntry{KeyHash: 9, CommitLogOffset: 1 << 33, TimeDiff: 7, Prev: 3}
	EncodeIndexEntry(e[:], ent)
	if DecodeIndexEntry(e[:]) != ent {
		t.Fatal("entry")
	}
	file := make([]byte, IndexFileSize(10, 5))
	PutIndexSlot(file, 9, 4)
	if IndexSlot(file, 9) != 4 || IndexEntryPos(10, 5)+IndexEntrySize != int64(len(file)) {
		t.Fatal("slots")
	}
	// Java: Math.abs(("TopicTest" + "#" + "k1").hashCode()).
	if got := IndexKeyHash("TopicTest", "k1"); got != 2746024 {
		t.Fatalf("IndexKeyHash = %d", got)
	}
}

func TestCheckpoint(t *testing.T) {
	c := Checkpoint{CommitLogFlushed: 10, DispatchDurable: 8, Timestamp: 99}
	b := EncodeCheckpoint(c)
	if got, err := DecodeCheckpoint(b); err != nil || got != c {
		t.Fatal(got, err)
	}
	b[5] ^= 1
	if _, err := DecodeCheckpoint(b); !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
	if _, err := DecodeCheckpoint(b[:10]); !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
}
