package remoting

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/apogeemq/apogee/remoting/code"
)

// javaResponseJSON and javaResponseBinary are the annotated frames of PROTOCOL.md §1.8: a Java broker's
// response with one ext field, in both header forms.
const (
	javaResponseJSON = `{"code":0,"extFields":{"queueId":"2"},"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":409}`
	javaResponseBin  = "00000027" + "01000023" + "0000" + "00" + "0199" + "00000005" + "00000001" + "00000000" +
		"0000000e" + "0007" + "7175657565496400000001" + "32"
)

func javaResponse(st SerializeType) *Command {
	return &Command{Code: 0, Language: LangJava, Version: 409, Opaque: 5, Flag: FlagResponse,
		ExtFields: Fields{"queueId", "2"}, SerializeType: st}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenJSONFrame(t *testing.T) {
	frame, err := AppendFrame(nil, javaResponse(JSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(frame) != 4+127 {
		t.Fatalf("frame is %d bytes, want 4+127", len(frame))
	}
	if !bytes.Equal(frame[:8], []byte{0, 0, 0, 0x7f, 0, 0, 0, 0x7b}) {
		t.Fatalf("prefix % x", frame[:8])
	}
	if got := string(frame[8:]); got != javaResponseJSON {
		t.Fatalf("header\n got %s\nwant %s", got, javaResponseJSON)
	}
	got, err := DecodeFrame(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, javaResponse(JSON)) {
		t.Fatalf("decoded %+v", got)
	}
}

func TestGoldenBinaryFrame(t *testing.T) {
	want := mustHex(t, javaResponseBin)
	frame, err := AppendFrame(nil, javaResponse(RocketMQ))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(frame, want) {
		t.Fatalf("frame\n got % x\nwant % x", frame, want)
	}
	got, err := DecodeFrame(want[4:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, javaResponse(RocketMQ)) {
		t.Fatalf("decoded %+v", got)
	}
}

// The Go client v2.1.2 writes its header in struct order with an empty remark (PROTOCOL.md §1.3).
func TestDecodeGoClientHeader(t *testing.T) {
	header := `{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"TopicTest"}}`
	frame := append([]byte{0, 0, 0, byte(len(header))}, header...)
	cmd, err := DecodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	want := &Command{Code: 105, Language: LangGo, Version: 317, Opaque: 1, ExtFields: Fields{"topic", "TopicTest"}}
	if !reflect.DeepEqual(cmd, want) {
		t.Fatalf("got %+v", cmd)
	}
	if cmd.RequestCode() != code.GetRouteinfoByTopic {
		t.Fatal(cmd.RequestCode())
	}
}

func TestRoundTripBothForms(t *testing.T) {
	cmds := []*Command{
		{Code: 10, Language: LangGo, Version: 317, Opaque: 1 << 30, Flag: 0,
			ExtFields: Fields{"topic", "T", "properties", "TAGS\x01a\x02KEYS\x01k 1\x02", "quote", `"\/`, "uni", "héllo ☃ 𝄞"},
			Body:      []byte("hello body")},
		{Code: -1, Language: LangRust, Version: -5, Opaque: -7, Flag: FlagResponse | FlagOneway, Remark: "line1\nline2\ttab \x01 ctl"},
		{Code: 34, Language: LangJava, Version: 409, Body: bytes.Repeat([]byte{0, 1, 2}, 1000)},
		{Code: 0, Language: LangGo, ExtFields: Fields{"", "", "empty", ""}},
	}
	for _, st := range []SerializeType{JSON, RocketMQ} {
		for i, c := range cmds {
			c := *c
			c.SerializeType = st
			frame, err := AppendFrame(nil, &c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadFrame(bytes.NewReader(frame), DefaultMaxFrameLength)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := DecodeFrame(got)
			if err != nil {
				t.Fatalf("%v #%d: %v", st, i, err)
			}
			if !reflect.DeepEqual(dec, &c) {
				t.Errorf("%v #%d:\n got %+v\nwant %+v", st, i, dec, &c)
			}
		}
	}
}

// TestDecodeFrameAliased checks that an aliased decode gives what a copying one does, allocates
// nothing into a reused command (the properties' separators are escaped in JSON), and that its strings, unlike DecodeFrameInto's, are the frame's
// memory.
func TestDecodeFrameAliased(t *testing.T) {
	c := &Command{Code: 310, Language: LangGo, Version: 317, Opaque: 9, Remark: "a remark",
		ExtFields: Fields{"b", "TopicA", "i", "TAGS\x01a\x02UNIQ_KEY\x01ID1"}, Body: []byte("body")}
	for _, st := range []SerializeType{JSON, RocketMQ} {
		c.SerializeType = st
		frame, err := AppendFrame(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		frame = frame[4:]
		var aliased, copied Command
		if err := DecodeFrameAliased(&aliased, frame); err != nil {
			t.Fatalf("%v: %v", st, err)
		}
		if err := DecodeFrameInto(&copied, frame); err != nil {
			t.Fatalf("%v: %v", st, err)
		}
		aliasedFields := aliased
		aliasedFields.scratch = nil
		if !reflect.DeepEqual(&aliasedFields, c) || !reflect.DeepEqual(&copied, c) {
			t.Fatalf("%v:\n aliased %+v\n  copied %+v\n    want %+v", st, &aliasedFields, &copied, c)
		}
		if n := testing.AllocsPerRun(100, func() { DecodeFrameAliased(&aliased, frame) }); n != 0 {
			t.Errorf("%v: an aliased decode into a reused command allocates %v times", st, n)
		}
		// Own: the strings survive the frame's memory and the scratch room being reused.
		var owned Command
		if err := DecodeFrameAliased(&owned, frame); err != nil {
			t.Fatal(err)
		}
		scratch := owned.scratch[:cap(owned.scratch)]
		owned.Own()
		if !reflect.DeepEqual(&owned, c) {
			t.Fatalf("%v: owned %+v, want %+v", st, &owned, c)
		}
		i := bytes.Index(frame, []byte("TopicA"))
		frame[i] = 'X'
		for j := range scratch {
			scratch[j] = '?'
		}
		if !reflect.DeepEqual(&owned, c) {
			t.Errorf("%v: owned after the frame and scratch changed %+v, want %+v", st, &owned, c)
		}
		if got := aliased.Ext("b"); got != "XopicA" {
			t.Errorf("%v: aliased topic after the frame changed = %q, want it to follow the frame", st, got)
		}
		if got := copied.Ext("b"); got != "TopicA" {
			t.Errorf("%v: copied topic after the frame changed = %q", st, got)
		}
	}
}

func TestJSONHeaderLeniency(t *testing.T) {
	cases := map[string]*Command{
		// Unknown members of any type are skipped; null remark and extFields are fine; whitespace anywhere.
		` { "code" : 17 , "x":[1,{"a":[true,false,null]},"s"], "remark":null, "extFields":null, "language":3 } `: {Code: 17, Language: LangPython},
		// Ext values that are not strings keep their text.
		`{"code":1,"extFields":{"n":12,"b":true,"f":false,"z":null,"e":"\u00e9\ud834\udd1e\n"}}`: {Code: 1, ExtFields: Fields{"n", "12", "b", "true", "f", "false", "e", "é𝄞\n"}},
		`{"code":1,"language":"KLINGON"}`: {Code: 1, Language: LangOther},
	}
	for header, want := range cases {
		cmd, err := DecodeFrame(append([]byte{0, 0, 0, byte(len(header))}, header...))
		if err != nil {
			t.Errorf("%s: %v", header, err)
			continue
		}
		if !reflect.DeepEqual(cmd, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", header, cmd, want)
		}
	}
}

func TestMalformedFrames(t *testing.T) {
	bad := map[string][]byte{
		"short":             {0, 0},
		"header too long":   {0, 0, 0, 9, '{', '}'},
		"unknown form":      {7, 0, 0, 2, '{', '}'},
		"code out of range": jsonFrame(`{"code":40000}`),
		"opaque not int":    jsonFrame(`{"opaque":1.5}`),
		"unterminated":      jsonFrame(`{"code":1`),
		"trailing":          jsonFrame(`{"code":1}x`),
		"bad escape":        jsonFrame(`{"remark":"\q"}`),
		"ext array":         jsonFrame(`{"extFields":{"a":[1]}}`),
		"deep":              jsonFrame(`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`),
		"ctl in string":     jsonFrame("{\"remark\":\"a\x01\"}"),
		"binary short":      {1, 0, 0, 3, 0, 1, 0},
		"binary remark len": binFrame(mustHex(t, "0000"+"00"+"0000"+"00000000"+"00000000"+"7fffffff")),
		"binary ext len":    binFrame(mustHex(t, "0000"+"00"+"0000"+"00000000"+"00000000"+"00000000"+"00000010"+"0001")),
		"binary negative":   binFrame(mustHex(t, "0000"+"00"+"0000"+"00000000"+"00000000"+"ffffffff")),
	}
	for name, frame := range bad {
		if _, err := DecodeFrame(frame); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("%s: got %v, want ErrMalformedFrame", name, err)
		}
	}
}

func jsonFrame(header string) []byte {
	return append([]byte{0, 0, 0, byte(len(header))}, header...)
}

func binFrame(header []byte) []byte {
	return append([]byte{1, 0, 0, byte(len(header))}, header...)
}

func TestReadFrameLimits(t *testing.T) {
	// A huge length prefix is refused before anything is allocated.
	huge := []byte{0x7f, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := ReadFrame(bytes.NewReader(huge), DefaultMaxFrameLength); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("refusing a frame allocated %d bytes", n)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 2}), 100); !errors.Is(err, ErrMalformedFrame) {
		t.Errorf("length 2: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 100); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 8, 0, 0}), 100); err != io.ErrUnexpectedEOF {
		t.Errorf("torn: %v", err)
	}
}

func TestFrameHeaderForSeparateBody(t *testing.T) {
	c := &Command{Code: 11, Flag: FlagResponse, ExtFields: Fields{"nextBeginOffset", "7"}}
	body := []byte("stored messages")
	head, err := AppendFrameHeader(nil, c, len(body))
	if err != nil {
		t.Fatal(err)
	}
	c.Body = body
	whole, _ := AppendFrame(nil, c)
	if !bytes.Equal(append(head, body...), whole) {
		t.Fatal("header + body differs from the whole frame")
	}
}

func TestExtReader(t *testing.T) {
	c := &Command{ExtFields: Fields{"topic", "T", "queueId", "3", "big", "9999999999", "order", "TRUE", "bad", "x"}}
	r := ReadExt(c)
	if r.String("topic") != "T" || r.Int32("queueId") != 3 || r.Int64("big") != 9999999999 || !r.Bool("order") {
		t.Fatal("values")
	}
	if r.OptInt32("missing", 8) != 8 || r.OptBool("missing", true) != true || r.OptString("missing") != "" {
		t.Fatal("defaults")
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	r.Int32("big")
	if err := r.Err(); !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), `"big"`) {
		t.Fatalf("got %v", err)
	}
	r2 := ReadExt(c)
	r2.String("nope")
	r2.Int32("bad")
	if err := r2.Err(); err == nil || !strings.Contains(err.Error(), `"nope" is required`) {
		t.Fatalf("first error should win: %v", err)
	}
}

func BenchmarkDecodeGoClientSend(b *testing.B) {
	c := &Command{Code: 10, Language: LangGo, Version: 317, Opaque: 12345, ExtFields: Fields{
		"producerGroup", "pg",
		"topic", "TopicTest",
		"defaultTopic", "TBW102",
		"defaultTopicQueueNums", "4",
		"queueId", "1",
		"sysFlag", "0",
		"bornTimestamp", "1700000000000",
		"flag", "0",
		"properties", "TAGS\x01TagA\x02UNIQ_KEY\x01C0A80001000000000000000000000001\x02",
		"reconsumeTimes", "0",
		"unitMode", "false",
		"batch", "false",
	}, Body: make([]byte, 1024)}
	frame, _ := AppendFrame(nil, c)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeFrame(frame[4:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	c := &Command{Code: 0, Flag: FlagResponse, Opaque: 5, ExtFields: Fields{
		"msgId", "7F00000100002A9F0000000000000000",
		"queueId", "1",
		"queueOffset", "42",
	}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], c); err != nil {
			b.Fatal(err)
		}
	}
}
