package crashfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apogeemq/apogee/store/vfs"
)

func TestCrashUndoesUnsyncedWrites(t *testing.T) {
	dir := t.TempDir()
	synced := filepath.Join(dir, "synced")
	os.WriteFile(synced, []byte("0123456789"), 0o644)
	fs := Wrap(vfs.Default)
	f, err := fs.OpenFile(synced, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("AB"), 0)
	f.Sync()
	f.WriteAt([]byte("xyz"), 5)    // lost
	f.WriteAt([]byte("tail!"), 10) // lost, and the size with it
	fresh, _ := fs.OpenFile(filepath.Join(dir, "fresh"), os.O_CREATE|os.O_RDWR, 0o644)
	fresh.WriteAt([]byte("data"), 0)
	fresh.Sync() // data synced, but the directory entry is not
	if err := fs.Crash(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(synced); string(got) != "AB23456789" {
		t.Fatalf("after crash %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "fresh")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file created without a directory sync survived: %v", err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write after crash: %v", err)
	}
}
