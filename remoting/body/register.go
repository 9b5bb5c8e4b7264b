package body

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// RegisterBrokerBody is the body of REGISTER_BROKER: the broker's topics and filter servers.
type RegisterBrokerBody struct {
	TopicConfigSerializeWrapper TopicConfigWrapper `json:"topicConfigSerializeWrapper"`
	FilterServerList            []string           `json:"filterServerList"`
}

// maxCompressedBody bounds the inflated size of a compressed registration, so a small hostile body
// cannot expand without limit.
const maxCompressedBody = 64 << 20

// BodyCRC32 is the checksum a broker sends as the bodyCrc32 ext field of REGISTER_BROKER.
func BodyCRC32(b []byte) int32 { return int32(crc32.ChecksumIEEE(b) & 0x7FFFFFFF) }

// EncodeRegisterBroker encodes the body in the uncompressed JSON form.
func EncodeRegisterBroker(b *RegisterBrokerBody) []byte {
	if b.FilterServerList == nil {
		c := *b
		c.FilterServerList = []string{}
		b = &c
	}
	return Marshal(b)
}

// DecodeRegisterBroker decodes a REGISTER_BROKER body in the form compressed says: JSON, or the
// zlib-compressed form of RocketMQ's compressedRegister. Errors say what is wrong with the body.
func DecodeRegisterBroker(data []byte, compressed bool) (*RegisterBrokerBody, error) {
	if compressed {
		return decodeCompressedRegister(data)
	}
	var b RegisterBrokerBody
	if len(data) == 0 {
		return &b, nil
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("register body is not valid JSON: %v", err)
	}
	for name, tc := range b.TopicConfigSerializeWrapper.TopicConfigTable {
		if tc == nil {
			return nil, fmt.Errorf("register body: topic %q has no config", name)
		}
		if tc.TopicName == "" {
			tc.TopicName = name
		}
	}
	return &b, nil
}

// decodeCompressedRegister reads RegisterBrokerBody.encode(true): a zlib stream of
// int32 length + DataVersion JSON, int32 topic count, then per topic int32 length +
// "name readQueueNums writeQueueNums perm topicFilterType" (RocketMQ 5 appends topic attributes as
// JSON after these fields), then int32 length + filter server list JSON.
func decodeCompressedRegister(data []byte) (*RegisterBrokerBody, error) {
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("compressed register body: %v", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxCompressedBody+1))
	if err != nil {
		return nil, fmt.Errorf("compressed register body: %v", err)
	}
	if len(raw) > maxCompressedBody {
		return nil, fmt.Errorf("compressed register body inflates past %d bytes", maxCompressedBody)
	}
	r := bytes.NewReader(raw)
	chunk := func(what string) ([]byte, error) {
		var n int32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return nil, fmt.Errorf("compressed register body: %s length: %v", what, err)
		}
		if n < 0 || int(n) > r.Len() {
			return nil, fmt.Errorf("compressed register body: %s length %d exceeds the %d bytes left", what, n, r.Len())
		}
		b := make([]byte, n)
		r.Read(b)
		return b, nil
	}
	var out RegisterBrokerBody
	dv, err := chunk("data version")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(dv, &out.TopicConfigSerializeWrapper.DataVersion); err != nil {
		return nil, fmt.Errorf("compressed register body: data version: %v", err)
	}
	var count int32
	if err := binary.Read(r, binary.BigEndian, &count); err != nil || count < 0 {
		return nil, fmt.Errorf("compressed register body: bad topic count")
	}
	out.TopicConfigSerializeWrapper.TopicConfigTable = make(map[string]*TopicConfig, min(int(count), 1<<16))
	for range count {
		b, err := chunk("topic config")
		if err != nil {
			return nil, err
		}
		tc, err := parseTopicConfigLine(string(b))
		if err != nil {
			return nil, err
		}
		out.TopicConfigSerializeWrapper.TopicConfigTable[tc.TopicName] = tc
	}
	if r.Len() > 0 {
		fs, err := chunk("filter server list")
		if err != nil {
			return nil, err
		}
		if len(fs) > 0 {
			if err := json.Unmarshal(fs, &out.FilterServerList); err != nil {
				return nil, fmt.Errorf("compressed register body: filter server list: %v", err)
			}
		}
	}
	return &out, nil
}

// parseTopicConfigLine reads TopicConfig.encode(): space-separated name, read and write queue
// numbers, perm and filter type, then optionally the attributes as JSON.
func parseTopicConfigLine(line string) (*TopicConfig, error) {
	fields := strings.SplitN(line, " ", 6)
	if len(fields) < 5 {
		return nil, fmt.Errorf("compressed register body: topic config %q has %d fields, want 5", line, len(fields))
	}
	tc := &TopicConfig{TopicName: fields[0], TopicFilterType: fields[4]}
	for i, dst := range []*int32{&tc.ReadQueueNums, &tc.WriteQueueNums, &tc.Perm} {
		n, err := strconv.ParseInt(fields[i+1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("compressed register body: topic config %q: field %d is not a number", line, i+2)
		}
		*dst = int32(n)
	}
	if len(fields) == 6 && fields[5] != "" {
		if err := json.Unmarshal([]byte(fields[5]), &tc.Attributes); err != nil {
			return nil, fmt.Errorf("compressed register body: topic %q attributes: %v", tc.TopicName, err)
		}
	}
	return tc, nil
}

// EncodeCompressedRegister encodes the compressed form, as a broker with compressedRegister=true does.
func EncodeCompressedRegister(b *RegisterBrokerBody) []byte {
	var raw bytes.Buffer
	put := func(p []byte) {
		binary.Write(&raw, binary.BigEndian, int32(len(p)))
		raw.Write(p)
	}
	put(Marshal(b.TopicConfigSerializeWrapper.DataVersion))
	binary.Write(&raw, binary.BigEndian, int32(len(b.TopicConfigSerializeWrapper.TopicConfigTable)))
	for _, tc := range b.TopicConfigSerializeWrapper.TopicConfigTable {
		filter := tc.TopicFilterType
		if filter == "" {
			filter = "SINGLE_TAG"
		}
		line := fmt.Sprintf("%s %d %d %d %s", tc.TopicName, tc.ReadQueueNums, tc.WriteQueueNums, tc.Perm, filter)
		if len(tc.Attributes) > 0 {
			line += " " + string(Marshal(tc.Attributes))
		}
		put([]byte(line))
	}
	fs := b.FilterServerList
	if fs == nil {
		fs = []string{}
	}
	put(Marshal(fs))
	var out bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	zw.Write(raw.Bytes())
	zw.Close()
	return out.Bytes()
}
