package message

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	testBorn  = netip.MustParseAddrPort("10.0.0.2:50000")
	testStore = netip.MustParseAddrPort("10.0.0.1:10911")
)

// exampleRecord is the annotated example of PROTOCOL.md §4.1.
func exampleMessage() *Message {
	return &Message{
		Topic: "T1", QueueID: 2, Body: []byte("hi"),
		Properties:     map[string]string{"TAGS": "A", "UNIQ_KEY": "0A0000020000C35000000000000000AB"},
		QueueOffset:    7,
		BornTimestamp:  0x18c00000000,
		BornHost:       testBorn,
		StoreTimestamp: 0x18c00000010,
		StoreHost:      testStore,
	}
}

func TestRecordMatchesProtocolExample(t *testing.T) {
	m := exampleMessage()
	m.CommitLogOffset = 0x1234
	rec, err := AppendRecord(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 143 {
		t.Fatalf("size %d, want 143", len(rec))
	}
	want := "0000008fdaa320a7"
	if got := hex.EncodeToString(rec[:8]); got != want {
		t.Fatalf("head %s, want %s", got, want)
	}
	wantTail := []string{
		"00000002", // queue id
		"00000000", // flag
		"0000000000000007",
		"0000000000001234",
		"00000000",
		"0000018c00000000",
		"0a000002" + "0000c350",
		"0000018c00000010",
		"0a000001" + "00002a9f",
		"00000000",
		"0000000000000000",
		"00000002" + "6869",
		"02" + "5431",
		"0030" + hex.EncodeToString([]byte("TAGS\x01A\x02UNIQ_KEY\x010A0000020000C35000000000000000AB")),
	}
	if got, want := hex.EncodeToString(rec[12:]), strings.Join(wantTail, ""); got != want {
		t.Fatalf("record\n got %s\nwant %s", got, want)
	}
	got, n, err := DecodeRecord(rec)
	if err != nil || n != 143 {
		t.Fatalf("decode: n=%d err=%v", n, err)
	}
	m.StoreSize, m.BodyCRC = 143, BodyCRC(m.Body)
	checkSameMessage(t, got, m)
	if got.MsgID() != m.UniqKey() || got.OffsetMsgID() != "0A00000100002A9F0000000000001234" {
		t.Fatalf("ids %s %s", got.MsgID(), got.OffsetMsgID())
	}
}

func checkSameMessage(t *testing.T, got, want *Message) {
	t.Helper()
	g, w := *got, *want
	if !bytes.Equal(g.Body, w.Body) || !maps.Equal(g.Properties, w.Properties) {
		t.Fatalf("body/properties differ:\n got %q %v\nwant %q %v", g.Body, g.Properties, w.Body, w.Properties)
	}
	g.Body, w.Body, g.Properties, w.Properties = nil, nil, nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("message differs:\n got %+v\nwant %+v", g, w)
	}
}

func TestRecordRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hosts := []netip.AddrPort{testBorn, netip.MustParseAddrPort("[2001:db8::1]:9876")}
	for i := range 500 {
		m := &Message{
			Topic:                     strings.Repeat("t", 1+r.IntN(MaxTopicLength)),
			QueueID:                   r.Int32(),
			Flag:                      r.Int32(),
			Body:                      randBytes(r, r.IntN(3000)),
			SysFlag:                   r.Int32N(16) &^ 0x30,
			BornTimestamp:             r.Int64(),
			BornHost:                  hosts[r.IntN(2)],
			StoreTimestamp:            r.Int64(),
			StoreHost:                 hosts[r.IntN(2)],
			ReconsumeTimes:            r.Int32(),
			PreparedTransactionOffset: r.Int64(),
			QueueOffset:               r.Int64(),
			CommitLogOffset:           r.Int64(),
		}
		for range r.IntN(5) {
			m.SetProperty(randName(r), randName(r))
		}
		rec, err := AppendRecord(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) != EncodedSize(m) {
			t.Fatalf("%d: size %d, EncodedSize %d", i, len(rec), EncodedSize(m))
		}
		q, p, s := r.Int64(), r.Int64(), r.Int64()
		PatchRecord(rec, q, p, s)
		m.QueueOffset, m.CommitLogOffset, m.StoreTimestamp = q, p, s
		got, n, err := DecodeRecord(rec)
		if err != nil || n != len(rec) {
			t.Fatalf("%d: n=%d err=%v", i, n, err)
		}
		m.SysFlag = hostFlags(m.SysFlag, m.BornHost, m.StoreHost)
		m.StoreSize, m.BodyCRC = int32(len(rec)), BodyCRC(m.Body)
		checkSameMessage(t, got, m)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randName(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz_ABC 0123"
	b := make([]byte, 1+r.IntN(12))
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func TestRecordCorruption(t *testing.T) {
	rec, _ := AppendRecord(nil, exampleMessage())
	cases := map[string]func([]byte) []byte{
		"short":     func(b []byte) []byte { return b[:len(b)-1] },
		"bad magic": func(b []byte) []byte { b[5] ^= 1; return b },
		"body crc":  func(b []byte) []byte { b[88] ^= 1; return b },
		"size big":  func(b []byte) []byte { b[3]++; return append(b, 0) },
		"size tiny": func(b []byte) []byte { b[3] = 10; return b },
		"body len":  func(b []byte) []byte { b[87] = 200; return b },
		"blank":     func(b []byte) []byte { copy(b[4:], []byte{0xcb, 0xd4, 0x31, 0x94}); return b },
	}
	for name, mutate := range cases {
		b := mutate(bytes.Clone(rec))
		if _, _, err := DecodeRecord(b); !IsCorrupt(err) {
			t.Errorf("%s: err %v, want corrupt", name, err)
		}
	}
	if _, err := AppendRecord(nil, &Message{Topic: strings.Repeat("x", 128)}); !errors.Is(err, ErrTopicTooLong) {
		t.Fatalf("long topic: %v", err)
	}
	if _, err := AppendRecord(nil, &Message{Topic: "t", Properties: map[string]string{"a\x01": "b"}}); !errors.Is(err, ErrBadProperty) {
		t.Fatalf("bad property: %v", err)
	}
	if _, err := AppendRecord(nil, &Message{Topic: "t", Properties: map[string]string{"a": strings.Repeat("v", 40000)}}); !errors.Is(err, ErrPropertiesTooLong) {
		t.Fatalf("long properties: %v", err)
	}
}

func TestDecodeRecordsBackToBack(t *testing.T) {
	var body []byte
	for i := range 3 {
		m := exampleMessage()
		m.QueueOffset = int64(i)
		body, _ = AppendRecord(body, m)
	}
	msgs, err := DecodeRecords(body)
	if err != nil || len(msgs) != 3 || msgs[2].QueueOffset != 2 {
		t.Fatalf("msgs %d err %v", len(msgs), err)
	}
	msgs, err = DecodeRecords(body[:len(body)-3])
	if !IsCorrupt(err) || len(msgs) != 2 {
		t.Fatalf("torn: msgs %d err %v", len(msgs), err)
	}
	for _, garbage := range [][]byte{{0, 0, 0, 0, 1, 2, 3, 4}, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, {1}} {
		msgs, err = DecodeRecords(append(body[:len(body):len(body)], garbage...))
		if !IsCorrupt(err) || len(msgs) != 3 || string(msgs[2].Body) != "hi" || msgs[0].Topic != "T1" {
			t.Fatalf("garbage %x after three records: msgs %d err %v", garbage, len(msgs), err)
		}
	}
}

func TestProperties(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"":                             nil,
		"A\x01x\x02B\x01y":             {"A": "x", "B": "y"},
		"A\x01x\x02B\x01y\x02":         {"A": "x", "B": "y"},
		"A\x01\x02\x01y\x02C\x02D\x01": {},
		"KEYS\x01k1 k2\x02A\x01x\x01z": {"KEYS": "k1 k2", "A": "x\x01z"},
	} {
		got := ParseProperties(in)
		if !maps.Equal(got, want) {
			t.Errorf("ParseProperties(%q) = %v, want %v", in, got, want)
		}
		for k, v := range want {
			if b, ok := LookupProperty([]byte(in), k); !ok || string(b) != v {
				t.Errorf("LookupProperty(%q, %q) = %q %v", in, k, b, ok)
			}
		}
	}
	if _, ok := LookupProperty([]byte("A\x01x"), "B"); ok {
		t.Fatal("found missing property")
	}
	p := map[string]string{"b": "2", "a": "1", "empty": ""}
	if got := string(AppendProperties(nil, p)); got != "a\x011\x02b\x012" || PropertiesLength(p) != len(got) {
		t.Fatalf("AppendProperties = %q, length %d", got, PropertiesLength(p))
	}
}

func TestTagsCode(t *testing.T) {
	for tag, want := range map[string]int64{
		"":                   0,
		"TagA":               2598919,
		"hello":              99162322,
		"polygenelubricants": -2147483648,
		"\U0001F600":         1772899,
		"é":                  233,
	} {
		if got := TagsCode(tag); got != want {
			t.Errorf("TagsCode(%q) = %d, want %d", tag, got, want)
		}
	}
}

func TestOffsetMsgID(t *testing.T) {
	id := OffsetMsgID(testStore, 0x1234)
	if id != "0A00000100002A9F0000000000001234" {
		t.Fatal(id)
	}
	host, off, err := ParseOffsetMsgID(strings.ToLower(id))
	if err != nil || host != testStore || off != 0x1234 {
		t.Fatalf("%v %d %v", host, off, err)
	}
	v6 := netip.MustParseAddrPort("[2001:db8::1]:10911")
	id6 := OffsetMsgID(v6, 99)
	if host, off, err := ParseOffsetMsgID(id6); len(id6) != 56 || err != nil || host != v6 || off != 99 {
		t.Fatalf("v6 %s: %v %d %v", id6, host, off, err)
	}
	for _, bad := range []string{"", "0A", "ZZ00000100002A9F0000000000001234", id + "00"} {
		if _, _, err := ParseOffsetMsgID(bad); !errors.Is(err, ErrBadMsgID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestUniqIDGenerator(t *testing.T) {
	g := NewUniqIDGenerator(netip.MustParseAddr("192.0.2.1"), 77)
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for range 1000 {
		id := g.NextAt(now)
		if len(id) != 32 || !strings.HasPrefix(id, "C0000201004D") || strings.ToUpper(id) != id || seen[id] {
			t.Fatalf("bad or repeated id %s", id)
		}
		seen[id] = true
	}
}

func TestBatch(t *testing.T) {
	in := []*Message{
		{Flag: 1, Body: []byte("batch-0"), Properties: map[string]string{"TAGS": "TagA"}},
		{Body: []byte{}, Properties: nil},
		{Flag: -5, Body: bytes.Repeat([]byte("x"), 5000), Properties: map[string]string{"KEYS": "a b", "UNIQ_KEY": "u"}},
	}
	body, err := AppendBatch(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	// PROTOCOL.md §4.6 layout; 0x26 because we write no trailing \x02 (Go writes one: 0x27).
	if got := hex.EncodeToString(body[:20]); got != "0000002600000000000000000000000100000007" {
		t.Fatalf("first item head %s", got)
	}
	out, err := DecodeBatch(body)
	if err != nil || len(out) != 3 {
		t.Fatalf("%d %v", len(out), err)
	}
	for i := range in {
		if out[i].Flag != in[i].Flag || !bytes.Equal(out[i].Body, in[i].Body) || !maps.Equal(out[i].Properties, in[i].Properties) {
			t.Fatalf("%d: %+v != %+v", i, out[i], in[i])
		}
	}
	// Go clients write a trailing \x02.
	goStyle := []byte("\x00\x00\x00\x27\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07batch-0\x00\x0aTAGS\x01TagA\x02")
	if out, err := DecodeBatch(goStyle); err != nil || out[0].Tags() != "TagA" {
		t.Fatalf("go batch: %v", err)
	}
	for _, n := range []int{1, 10, 21, len(body) - 1} {
		if _, err := DecodeBatch(body[:n]); !errors.Is(err, ErrBadBatch) {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
}

func TestEncodedProperties(t *testing.T) {
	m := exampleMessage()
	want, err := AppendRecord(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	// The same message with its properties in wire form encodes to the same record (the map form
	// sorts names; this string is in that order).
	m.Properties, m.EncodedProperties = nil, "TAGS\x01A\x02UNIQ_KEY\x010A0000020000C35000000000000000AB"
	got, err := AppendRecord(nil, m)
	if err != nil || !bytes.Equal(got, want) || EncodedSize(m) != len(want) {
		t.Fatalf("AppendRecord with EncodedProperties: %v, equal %v, size %d of %d", err, bytes.Equal(got, want), EncodedSize(m), len(want))
	}
	if tags, keys, uniq := m.IndexedProperties(); tags != "A" || keys != "" || uniq != "0A0000020000C35000000000000000AB" {
		t.Fatalf("IndexedProperties = %q %q %q", tags, keys, uniq)
	}
	if m.Tags() != "A" || m.Property("MISSING") != "" || m.Properties != nil {
		t.Fatalf("reading decoded the properties: %v", m.Properties)
	}

	m.EncodedProperties = "KEYS\x01k1 k2\x02bad\x02TAGS\x01old\x02TAGS\x01new"
	if tags, keys, _ := m.IndexedProperties(); tags != "new" || keys != "k1 k2" || m.Tags() != "new" || len(m.Keys()) != 2 {
		t.Fatalf("the last of two values must win: %q %q", tags, keys)
	}
	m.SetProperty("A", "1")
	if m.EncodedProperties != "" || !maps.Equal(m.Properties, map[string]string{"KEYS": "k1 k2", "TAGS": "new", "A": "1"}) {
		t.Fatalf("SetProperty: %q %v", m.EncodedProperties, m.Properties)
	}
	m.Properties, m.EncodedProperties = nil, "A\x011\x02B\x012"
	m.DeleteProperty("A")
	if !maps.Equal(m.Properties, map[string]string{"B": "2"}) {
		t.Fatalf("DeleteProperty: %v", m.Properties)
	}

	m.Properties, m.EncodedProperties = nil, "K\x01"+strings.Repeat("v", MaxPropertiesLength)
	if _, err := AppendRecord(nil, m); !errors.Is(err, ErrPropertiesTooLong) {
		t.Fatalf("long EncodedProperties: %v", err)
	}
}
