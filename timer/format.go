package timer

import (
	"encoding/binary"
	"hash/crc32"
)

// These constants are part of the on-disk format and should not be changed.
const (
	entrySize      = 48 // one timer-log entry
	recordSize     = 32 // one wheel slot record
	headerSize     = 64 // segment, wheel and checkpoint headers
	ckptCopyOffset = 512
	formatVersion  = 1
)

var (
	segmentMagic = [8]byte{'A', 'P', 'G', 'T', 'L', 'O', 'G', 0}
	wheelMagic   = [8]byte{'A', 'P', 'G', 'W', 'H', 'E', 'E', 'L'}
	ckptMagic    = [8]byte{'A', 'P', 'G', 'T', 'C', 'K', 'P', 'T'}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// logEntry is one timer-log entry as stored.
type logEntry struct {
	deliverAt int64 // Unix ms
	ref       int64
	prev      int64 // index+1 of the previous entry of the same slot; 0: none
	slot      int64 // absolute slot number the entry is linked into
	size      int32
	seq       uint32 // 1-based position in its slot's chain
}

func encodeEntry(b []byte, e *logEntry) {
	_ = b[entrySize-1]
	le.PutUint64(b[0:], uint64(e.deliverAt))
	le.PutUint64(b[8:], uint64(e.ref))
	le.PutUint64(b[16:], uint64(e.prev))
	le.PutUint64(b[24:], uint64(e.slot))
	le.PutUint32(b[32:], uint32(e.size))
	le.PutUint32(b[36:], e.seq)
	le.PutUint32(b[40:], 0)
	le.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
}

// decodeEntry returns false for a torn, zero or otherwise invalid entry.
func decodeEntry(b []byte, e *logEntry) bool {
	_ = b[entrySize-1]
	if le.Uint32(b[44:]) != crc32.Checksum(b[:44], castagnoli) {
		return false
	}
	e.deliverAt = int64(le.Uint64(b[0:]))
	e.ref = int64(le.Uint64(b[8:]))
	e.prev = int64(le.Uint64(b[16:]))
	e.slot = int64(le.Uint64(b[24:]))
	e.size = int32(le.Uint32(b[32:]))
	e.seq = le.Uint32(b[36:])
	return e.seq >= 1 && e.prev >= 0
}

// slotRecord is one wheel slot: the head of its chain in the timer log.
type slotRecord struct {
	slot  int64 // absolute slot number; a ring position holds one at a time
	head  int64 // index+1 of the newest entry of the slot; 0: empty
	count uint32
}

func encodeRecord(b []byte, r *slotRecord) {
	_ = b[recordSize-1]
	le.PutUint64(b[0:], uint64(r.slot))
	le.PutUint64(b[8:], uint64(r.head))
	le.PutUint32(b[16:], r.count)
	le.PutUint64(b[20:], 0)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// decodeRecord reads a slot record. All zeros is a valid empty record;
// ok is false for a record that fails its checksum.
func decodeRecord(b []byte, r *slotRecord) (ok bool) {
	_ = b[recordSize-1]
	*r = slotRecord{}
	if le.Uint64(b[0:]) == 0 && le.Uint64(b[8:]) == 0 && le.Uint64(b[16:]) == 0 && le.Uint64(b[24:]) == 0 {
		return true
	}
	if le.Uint32(b[28:]) != crc32.Checksum(b[:28], castagnoli) {
		return false
	}
	r.slot = int64(le.Uint64(b[0:]))
	r.head = int64(le.Uint64(b[8:]))
	r.count = le.Uint32(b[16:])
	return r.head >= 0
}

// header is the 64-byte header of a segment, the wheel file, or one copy
// of the checkpoint. Which fields are used depends on the magic.
type header struct {
	magic [8]byte
	a, b  int64 // segment: first index, max slot; wheel: slot ms, slots; checkpoint: cursor, log durable
	c     int64 // checkpoint: sequence
	d     int64 // checkpoint: slot ms
	e     int64 // checkpoint: highest ref added to the log below b
	flags uint32
}

const flagClean = 1

func encodeHeader(b []byte, h *header) {
	_ = b[headerSize-1]
	clear(b[:headerSize])
	copy(b, h.magic[:])
	le.PutUint32(b[8:], formatVersion)
	le.PutUint32(b[12:], h.flags)
	le.PutUint64(b[16:], uint64(h.a))
	le.PutUint64(b[24:], uint64(h.b))
	le.PutUint64(b[32:], uint64(h.c))
	le.PutUint64(b[40:], uint64(h.d))
	le.PutUint64(b[48:], uint64(h.e))
	le.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

func decodeHeader(b []byte, magic [8]byte, h *header) bool {
	_ = b[headerSize-1]
	if [8]byte(b[:8]) != magic || le.Uint32(b[8:]) != formatVersion ||
		le.Uint32(b[60:]) != crc32.Checksum(b[:60], castagnoli) {
		return false
	}
	h.magic = magic
	h.flags = le.Uint32(b[12:])
	h.a = int64(le.Uint64(b[16:]))
	h.b = int64(le.Uint64(b[24:]))
	h.c = int64(le.Uint64(b[32:]))
	h.d = int64(le.Uint64(b[40:]))
	h.e = int64(le.Uint64(b[48:]))
	return true
}
