// Package message is Apogee's message model and the byte formats RocketMQ
// clients and brokers exchange for messages: the stored record (the same bytes
// the commit log holds and a PULL_MESSAGE body ships), the properties string,
// offset message ids, client message ids (UNIQ_KEY), the SEND_BATCH_MESSAGE
// body and the consume-queue tags code. It does no I/O.
//
// # Stored record (V1, PROTOCOL.md §4.1)
//
// All integers are big-endian. Positions assume IPv4 hosts; a host with its
// SYSFLAG IPv6 bit set takes 16+4 bytes instead of 4+4 and shifts what follows.
//
//	+0   TOTALSIZE        4   whole record, this field included
//	+4   MAGICCODE        4   0xDAA320A7 (V1); 0xCBD43194 = blank (segment end)
//	+8   BODYCRC          4   CRC32-IEEE(body) & 0x7FFFFFFF
//	+12  QUEUEID          4
//	+16  FLAG             4
//	+20  QUEUEOFFSET      8   index in the consume queue
//	+28  PHYSICALOFFSET   8   commit-log offset of this record
//	+36  SYSFLAG          4   see the Flag* and Transaction* constants
//	+40  BORNTIMESTAMP    8   ms
//	+48  BORNHOST         8   IPv4(4) + port(int32)
//	+56  STORETIMESTAMP   8   ms
//	+64  STOREHOST        8   IPv4(4) + port(int32)
//	+72  RECONSUMETIMES   4
//	+76  PREPAREDTXOFFSET 8
//	+84  BODYLENGTH 4 | BODY n
//	     TOPICLENGTH 1 | TOPIC t            (V1: one byte, topics <= 127 bytes)
//	     PROPERTIESLENGTH 2 | PROPERTIES p  (signed int16, <= 32767 bytes)
//
//	size = 91 + n + t + p
//
// Clients decode these fields sequentially and never skip by TOTALSIZE, so
// nothing may follow PROPERTIES. These constants are part of the wire format
// and should not be changed.
//
// # Properties (§4.3)
//
//	name \x01 value \x02 name \x01 value [\x02]
//
// Java writes no trailing \x02, Go writes one; ParseProperties accepts both,
// AppendProperties writes the Java form with names sorted.
//
// # Offset message id (§4.5)
//
//	hex( storeIPv4(4) | storePort(int32) | commitLogOffset(int64) )  = 32 uppercase hex digits
//
// # Batch body (§4.6)
//
//	TOTALSIZE 4 | MAGIC 4 (0) | BODYCRC 4 (0) | FLAG 4 | BODYLENGTH 4 | BODY | PROPERTIESLENGTH 2 | PROPERTIES
//
// # Usage
//
//	m := &message.Message{Topic: "T1", QueueID: 2, Body: []byte("hi"),
//		Properties: map[string]string{message.PropertyTags: "A"},
//		BornHost: born, StoreHost: store}
//	rec, err := message.AppendRecord(nil, m)     // encode (the store patches offsets)
//	msgs, err := message.DecodeRecords(pullBody) // decode, verifying body CRCs
//
// Decoders check every length before using it, keep no state between calls,
// never panic on any input and mark failures with ErrCorrupt (records),
// ErrBadBatch (batch bodies) or ErrBadMsgID (ids).
package message
