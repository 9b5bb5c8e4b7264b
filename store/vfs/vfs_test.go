package vfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOSFS(t *testing.T) {
	dir := t.TempDir()
	fs := Default
	if names, err := fs.List(filepath.Join(dir, "missing")); err != nil || names != nil {
		t.Fatalf("missing dir: %v %v", names, err)
	}
	f, err := fs.OpenFile(filepath.Join(dir, "b"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Allocate(1 << 20); err != nil {
		t.Fatal(err)
	}
	if size, _ := f.Size(); size != 1<<20 {
		t.Fatalf("size %d after Allocate", size)
	}
	m, ok := f.(Mapper)
	if !ok {
		t.Skip("no mmap on this platform")
	}
	data, err := m.Map(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	Prefault(data[:1<<16])
	copy(data[100:], "mapped")
	buf := make([]byte, 6)
	if _, err := f.ReadAt(buf, 100); err != nil || string(buf) != "mapped" {
		t.Fatalf("read back %q %v", buf, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := Unmap(data); err != nil {
		t.Fatal(err)
	}
	fs.OpenFile(filepath.Join(dir, "a"), os.O_CREATE|os.O_RDWR, 0o644)
	if names, _ := fs.List(dir); len(names) != 2 || names[0] != "a" {
		t.Fatalf("List = %v", names)
	}
	if err := fs.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	if u, err := fs.DiskUsage(dir); err != nil || u.Total == 0 || u.UsedRatio() <= 0 || u.UsedRatio() >= 1 {
		t.Fatalf("usage %+v %v", u, err)
	}
}
