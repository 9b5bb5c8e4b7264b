package remoting

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, st := range []SerializeType{JSON, RocketMQ} {
		frame, _ := AppendFrame(nil, javaResponse(st))
		f.Add(frame)
		req := NewRequest(105, Fields{"topic", "TopicTest"}, []byte("body"))
		req.SerializeType = st
		frame, _ = AppendFrame(nil, req)
		f.Add(frame)
	}
	f.Add(jsonFrame(`{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"TopicTest"}}`))
	for _, golden := range goldenClientFrames(f) {
		f.Add(golden)
	}
}

// FuzzDecodeFrame checks that any frame either fails with ErrMalformedFrame or decodes to a command
// that survives an encode/decode round trip unchanged.
// fuzzReused is the command FuzzDecodeFrame decodes every input into with DecodeFrameAliased.
var fuzzReused Command

func FuzzDecodeFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		cmd, err := DecodeFrame(data[4:])
		// An aliased decode, into a command reused across inputs as the transport's reader does,
		// must agree with the copying one.
		aliasErr := DecodeFrameAliased(&fuzzReused, data[4:])
		if (err == nil) != (aliasErr == nil) {
			t.Fatalf("copying decode: %v; aliased decode: %v", err, aliasErr)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		aliased := fuzzReused
		aliased.scratch = nil
		if !reflect.DeepEqual(&aliased, cmd) {
			t.Fatalf("aliased decode\n got %+v\nwant %+v", &aliased, cmd)
		}
		// Own gives strings of their own: equal, and unchanged when the frame is overwritten.
		var owned Command
		frame := bytes.Clone(data[4:])
		DecodeFrameAliased(&owned, frame)
		owned.Own()
		for i := range frame {
			frame[i] = '?'
		}
		owned.Body = cmd.Body
		if !reflect.DeepEqual(&owned, cmd) {
			t.Fatalf("owned\n got %+v\nwant %+v", &owned, cmd)
		}
		if cmd.SerializeType == JSON && !validUTF8Command(cmd) {
			return // invalid UTF-8 is replaced when encoding JSON, so it cannot round-trip
		}
		again, err := AppendFrame(nil, cmd)
		if err != nil {
			t.Fatal(err)
		}
		cmd2, err := DecodeFrame(again[4:])
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if cmd.Language > LangRust && cmd.SerializeType == JSON {
			cmd.Language = LangOther // JSON carries only the names of known languages
		}
		if !reflect.DeepEqual(cmd, cmd2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", cmd2, cmd)
		}
	})
}

func validUTF8Command(c *Command) bool {
	if !utf8Valid(c.Remark) {
		return false
	}
	for k, v := range c.ExtFields.All() {
		if !utf8Valid(k) || !utf8Valid(v) {
			return false
		}
	}
	return true
}

// FuzzReadFrame feeds a byte stream in small chunks and checks that the reader never over-reads,
// never allocates past the limit, and yields frames that DecodeFrame either accepts or rejects cleanly.
func FuzzReadFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &chunkReader{data: data, chunk: 3}
		for {
			frame, err := ReadFrame(r, 1<<16)
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF || errors.Is(err, ErrMalformedFrame) || errors.Is(err, ErrFrameTooLarge) {
					return
				}
				t.Fatalf("unexpected error: %v", err)
			}
			if _, err := DecodeFrame(frame); err != nil && !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("unexpected decode error: %v", err)
			}
		}
	})
}

type chunkReader struct {
	data  []byte
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.chunk, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}
