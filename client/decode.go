package client

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"

	"github.com/apogeemq/apogee/message"
)

// decodeMessages decodes stored records (a pull or query answer) and inflates compressed bodies, so
// callers always see what the producer sent. The returned messages have FlagCompressed cleared.
func decodeMessages(data []byte) ([]*message.Message, error) {
	msgs, err := message.DecodeRecords(data)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for _, m := range msgs {
		if m.SysFlag&message.FlagCompressed == 0 {
			continue
		}
		if kind := m.SysFlag & message.CompressionMask; kind != 0 && kind != 0x300 {
			return nil, fmt.Errorf("client: message %s: compression type %#x is not supported (zlib only)", m.MsgID(), kind)
		}
		zr, err := zlib.NewReader(bytes.NewReader(m.Body))
		if err != nil {
			return nil, fmt.Errorf("client: message %s: inflating the body: %w", m.MsgID(), err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("client: message %s: inflating the body: %w", m.MsgID(), err)
		}
		m.Body = plain
		m.SysFlag &^= message.FlagCompressed | message.CompressionMask
	}
	return msgs, nil
}
