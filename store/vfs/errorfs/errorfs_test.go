package errorfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apogeemq/apogee/store/vfs"
)

func TestOnIndexAndTornWrite(t *testing.T) {
	fs := Wrap(vfs.Default, OnIndex(OpWrite, 1))
	f, err := fs.OpenFile(filepath.Join(t.TempDir(), "f"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("first"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("second"), 5); !errors.Is(err, ErrInjected) {
		t.Fatalf("second write: %v", err)
	}
	if size, _ := f.Size(); size != 8 { // "first" + half of "second"
		t.Fatalf("size %d after a torn write", size)
	}
	if _, err := f.WriteAt([]byte("third"), 5); err != nil {
		t.Fatal(err)
	}
}

func TestToggle(t *testing.T) {
	var tg Toggle
	fs := Wrap(vfs.Default, &tg)
	dir := t.TempDir()
	f, err := fs.OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tg.Fail(OpSync, NoSpace)
	if err := f.Sync(); !vfs.IsNoSpace(err) {
		t.Fatalf("sync: %v", err)
	}
	tg.Fail(OpSync, nil)
	if err := f.Sync(); err != nil || tg.Count(OpSync) != 2 {
		t.Fatalf("sync: %v, count %d", err, tg.Count(OpSync))
	}
	tg.SetDiskUsage(&vfs.DiskUsage{Total: 10, Free: 1})
	if u, _ := fs.DiskUsage(dir); u.UsedRatio() != 0.9 {
		t.Fatalf("usage %v", u)
	}
	tg.Fail(OpRename, Injected())
	if err := fs.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "g")); !errors.Is(err, ErrInjected) {
		t.Fatalf("rename: %v", err)
	}
}
