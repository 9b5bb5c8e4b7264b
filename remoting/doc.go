// Package remoting is RocketMQ's remoting protocol as bytes: the frame codec, Command, and the header
// forms, with no sockets (package transport carries commands over TCP; package code holds the request
// and response code table).
//
// A frame on the wire, all integers big-endian:
//
//	+----------------+----------+-------------------+--------------+-------------+
//	| length (4B)    | type (1B)| header length (3B)| header       | body        |
//	+----------------+----------+-------------------+--------------+-------------+
//	length = 4 + header length + body length (it does not count itself)
//	type   = 0 JSON header, 1 ROCKETMQ binary header
//
// The JSON header is an object with code, language, version, opaque, flag, remark and extFields (a
// string map). The ROCKETMQ header is:
//
//	| code (2B) | language (1B) | version (2B) | opaque (4B) | flag (4B) |
//	| remark length (4B) | remark | ext length (4B) | { key length (2B) | key | value length (4B) | value }* |
//
// A Command keeps its ext fields as Fields, key, value pairs in one slice in wire order: a header has
// a handful of fields, so scanning beats hashing and decoding builds no map.
//
// These layouts and the constants that describe them are part of the wire format and must not be
// changed. The decoder checks every length before using it and keeps no state between frames; it is
// fuzzed (FuzzDecodeFrame, FuzzReadFrame) with frames captured from the official Go client as seeds.
//
// Usage:
//
//	frame, err := remoting.ReadFrame(r, remoting.DefaultMaxFrameLength)
//	cmd, err := remoting.DecodeFrame(frame)
//	ext := remoting.ReadExt(cmd)
//	topic := ext.String("topic")
//	if err := ext.Err(); err != nil { ... answer with a remark naming the bad field ... }
//	out, err := remoting.AppendFrame(buf[:0], remoting.NewResponse(code.Success, ""))
package remoting
