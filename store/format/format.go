package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/apogeemq/apogee/message"
)

// ErrCorrupt marks on-disk data of these formats that fails its checks.
var ErrCorrupt = errors.New("store/format: corrupt data")

var be = binary.BigEndian

// SegmentName returns the file name of the segment starting at offset.
func SegmentName(offset int64) string { return fmt.Sprintf("%020d", offset) }

// ParseSegmentName returns the start offset a segment name encodes.
func ParseSegmentName(name string) (int64, bool) {
	if len(name) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(name, 10, 64)
	return v, err == nil && v >= 0
}

// BlankSize is the size of the blank marker.
const BlankSize = message.BlankSize

// EncodeBlank writes a blank marker for a segment end of size bytes into b.
func EncodeBlank(b []byte, size int32) {
	be.PutUint32(b, uint32(size))
	be.PutUint32(b[4:], message.MagicBlank)
}

// CQUnitSize is the size of a consume-queue entry.
const CQUnitSize = 20

// CQUnit is one consume-queue entry.
type CQUnit struct {
	CommitLogOffset int64
	Size            int32
	TagsCode        int64
}

// EncodeCQUnit writes u into b[:CQUnitSize].
func EncodeCQUnit(b []byte, u CQUnit) {
	be.PutUint64(b, uint64(u.CommitLogOffset))
	be.PutUint32(b[8:], uint32(u.Size))
	be.PutUint64(b[12:], uint64(u.TagsCode))
}

// DecodeCQUnit reads the entry at b[:CQUnitSize].
func DecodeCQUnit(b []byte) CQUnit {
	return CQUnit{
		CommitLogOffset: int64(be.Uint64(b)),
		Size:            int32(be.Uint32(b[8:])),
		TagsCode:        int64(be.Uint64(b[12:])),
	}
}

// Valid reports whether u can be a written entry (a zero unit is the hole
// left by preallocation or a torn write).
func (u CQUnit) Valid() bool { return u.CommitLogOffset >= 0 && u.Size >= message.MinRecordSize }

// Index file sizes.
const (
	IndexHeaderSize = 40
	IndexSlotSize   = 4
	IndexEntrySize  = 20
)

// IndexHeader is the header of an index file.
type IndexHeader struct {
	BeginTimestamp int64 // store time (ms) of the first entry
	EndTimestamp   int64 // store time (ms) of the last entry
	BeginPhyOffset int64 // commit-log offset of the first entry
	EndPhyOffset   int64 // commit-log offset of the last entry
	SlotsUsed      int32
	EntryCount     int32 // entries written; the next one gets number EntryCount+1
}

// EncodeIndexHeader writes h into b[:IndexHeaderSize].
func EncodeIndexHeader(b []byte, h IndexHeader) {
	be.PutUint64(b, uint64(h.BeginTimestamp))
	be.PutUint64(b[8:], uint64(h.EndTimestamp))
	be.PutUint64(b[16:], uint64(h.BeginPhyOffset))
	be.PutUint64(b[24:], uint64(h.EndPhyOffset))
	be.PutUint32(b[32:], uint32(h.SlotsUsed))
	be.PutUint32(b[36:], uint32(h.EntryCount))
}

// DecodeIndexHeader reads the header at b[:IndexHeaderSize].
func DecodeIndexHeader(b []byte) IndexHeader {
	return IndexHeader{
		BeginTimestamp: int64(be.Uint64(b)),
		EndTimestamp:   int64(be.Uint64(b[8:])),
		BeginPhyOffset: int64(be.Uint64(b[16:])),
		EndPhyOffset:   int64(be.Uint64(b[24:])),
		SlotsUsed:      int32(be.Uint32(b[32:])),
		EntryCount:     int32(be.Uint32(b[36:])),
	}
}

// IndexFileSize returns the size of an index file with the given capacity.
func IndexFileSize(slots, entries int) int64 {
	return IndexHeaderSize + int64(slots)*IndexSlotSize + int64(entries+1)*IndexEntrySize
}

// IndexSlotPos returns the file position of slot i.
func IndexSlotPos(i int) int64 { return IndexHeaderSize + int64(i)*IndexSlotSize }

// IndexEntryPos returns the file position of entry number n (n >= 1).
func IndexEntryPos(slots, n int) int64 {
	return IndexHeaderSize + int64(slots)*IndexSlotSize + int64(n)*IndexEntrySize
}

// IndexEntry is one index entry.
type IndexEntry struct {
	KeyHash         int32
	CommitLogOffset int64
	TimeDiff        int32 // seconds after the header's BeginTimestamp
	Prev            int32 // number of the previous entry in the same slot, 0 = none
}

// EncodeIndexEntry writes e into b[:IndexEntrySize].
func EncodeIndexEntry(b []byte, e IndexEntry) {
	be.PutUint32(b, uint32(e.KeyHash))
	be.PutUint64(b[4:], uint64(e.CommitLogOffset))
	be.PutUint32(b[12:], uint32(e.TimeDiff))
	be.PutUint32(b[16:], uint32(e.Prev))
}

// DecodeIndexEntry reads the entry at b[:IndexEntrySize].
func DecodeIndexEntry(b []byte) IndexEntry {
	return IndexEntry{
		KeyHash:         int32(be.Uint32(b)),
		CommitLogOffset: int64(be.Uint64(b[4:])),
		TimeDiff:        int32(be.Uint32(b[12:])),
		Prev:            int32(be.Uint32(b[16:])),
	}
}

// IndexKeyHash is the hash of an index key: Java's hashCode of
// "topic#key", made non-negative.
func IndexKeyHash(topic, key string) int32 {
	h := message.HashMore(message.HashMore(0, topic), "#")
	h = message.HashMore(h, key)
	if h < 0 {
		h = -h
		if h < 0 {
			h = 0
		}
	}
	return h
}

// CheckpointSize is the size of the checkpoint file.
const CheckpointSize = 32

const checkpointMagic = 0x4150434B // "APCK"

// Checkpoint records what is known durable.
type Checkpoint struct {
	CommitLogFlushed int64 // every commit-log byte below this offset is durable
	DispatchDurable  int64 // consume queues and index are durable for every record below this offset
	Timestamp        int64 // ms, when the checkpoint was taken
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeCheckpoint returns the checkpoint file bytes.
func EncodeCheckpoint(c Checkpoint) []byte {
	b := make([]byte, CheckpointSize)
	be.PutUint32(b, checkpointMagic)
	be.PutUint64(b[4:], uint64(c.CommitLogFlushed))
	be.PutUint64(b[12:], uint64(c.DispatchDurable))
	be.PutUint64(b[20:], uint64(c.Timestamp))
	be.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// DecodeCheckpoint parses checkpoint file bytes; failures are ErrCorrupt.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) != CheckpointSize || be.Uint32(b) != checkpointMagic ||
		be.Uint32(b[28:]) != crc32.Checksum(b[:28], castagnoli) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %d bytes fails its checks", ErrCorrupt, len(b))
	}
	return Checkpoint{
		CommitLogFlushed: int64(be.Uint64(b[4:])),
		DispatchDurable:  int64(be.Uint64(b[12:])),
		Timestamp:        int64(be.Uint64(b[20:])),
	}, nil
}

// IndexSlot returns slot i of a whole index file image.
func IndexSlot(file []byte, i int) int32 { return int32(be.Uint32(file[IndexSlotPos(i):])) }

// PutIndexSlot sets slot i of a whole index file image to entry number n.
func PutIndexSlot(file []byte, i int, n int32) { be.PutUint32(file[IndexSlotPos(i):], uint32(n)) }
