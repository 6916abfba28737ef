package acibuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

const bombChunk = 1 << 20

// ZeroBomb returns, as a stream made on the fly, a gzip ACI named name
// whose rootfs holds one file of size bytes of zeros (size is rounded up to
// MiB): a few KiB of gzip per GiB, as a decompression bomb is. The stream
// is a series of gzip members, the same compressed MiB of zeros repeated,
// so making it costs nothing.
func ZeroBomb(name string, size int64) (io.Reader, error) {
	m, err := Manifest(name, nil)
	if err != nil {
		return nil, err
	}
	mj, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	chunks := (size + bombChunk - 1) / bombChunk
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	for _, h := range []*tar.Header{
		{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mj)), ModTime: DefaultModTime},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		tw.Write(mj)
	}
	for _, h := range []*tar.Header{
		{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: DefaultModTime},
		{Name: "rootfs/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: chunks * bombChunk, ModTime: DefaultModTime},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing bomb header: %w", err)
		}
	}
	tw.Flush() // no Close: the body and the trailer follow
	zero := gzipBytes(make([]byte, bombChunk))
	return io.MultiReader(
		bytes.NewReader(gzipBytes(head.Bytes())),
		&repeatReader{b: zero, left: chunks * int64(len(zero))},
		bytes.NewReader(gzipBytes(make([]byte, 1024))),
	), nil
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// repeatReader reads b over and over, left bytes in all.
type repeatReader struct {
	b    []byte
	off  int
	left int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	r.left -= int64(n)
	return n, nil
}
