// Package format holds every byte layout the store writes besides the
// message record itself (which package message owns): commit-log segment
// names and the blank marker, the consume-queue unit, the index file and the
// checkpoint. Everything else in the store calls these functions instead of
// touching offsets. All integers are big-endian. These constants are part of
// the on-disk format and should not be changed.
//
// # Commit-log segment
//
// A segment is named by its start offset, 20 decimal digits
// ("00000000001073741824"), and holds records back to back. When the next
// record does not fit, the rest of the segment is a blank marker:
//
//	| TOTALSIZE = bytes left in the segment (4) | MAGIC 0xCBD43194 (4) |
//
// The marker is written only if at least BlankSize bytes remain; the segment
// file itself ends after the marker.
//
// # Consume-queue unit (20 bytes; entry i of a queue is at byte 20*i)
//
//	| COMMITLOG OFFSET (8) | SIZE (4) | TAGS CODE (8) |
//
// # Index file
//
//	header (40)   | BEGIN TS (8) | END TS (8) | BEGIN PHY (8) | END PHY (8) | SLOTS USED (4) | ENTRY COUNT (4) |
//	slot (4)      | newest entry number in this slot, 0 = empty |          x slotCount
//	entry (20)    | KEY HASH (4) | COMMITLOG OFFSET (8) | TIME DIFF s (4) | PREV ENTRY (4) |   x entryCount
//
// Entry numbers start at 1; entry n is at 40 + 4*slotCount + 20*n. A key is
// hashed as Java's String.hashCode of "topic#key", made non-negative.
//
// # Checkpoint (32 bytes, file "checkpoint", replaced by rename)
//
//	| MAGIC "APCK" (4) | COMMITLOG FLUSHED (8) | DISPATCH DURABLE (8) | TIMESTAMP ms (8) | CRC32C of the first 28 (4) |
package format
