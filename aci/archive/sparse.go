package archive

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// archive/tar checks that a sparse map's fragments are ordered and within
// the file, but not that they describe as much data as the entry holds: a
// map that claims more (or less) is found out only once the whole logical
// file, holes included, has been read, which for a file of many GiB of
// holes takes minutes. checkSparse compares the two from the raw header
// blocks, before any of the body is read.

const blockSize = 512

// sparseInfo is what the raw header blocks say of a sparse entry.
type sparseInfo struct {
	data     int64 // bytes of data the map describes
	physical int64 // bytes of data the entry holds
}

// isSparse tells whether archive/tar took the entry for a sparse file.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	return hdr.PAXRecords["GNU.sparse.major"] != "" || hdr.PAXRecords["GNU.sparse.map"] != "" ||
		hdr.PAXRecords["GNU.sparse.numblocks"] != ""
}

// checkSparse checks a sparse entry's map against its data; rec holds the
// last bytes the tar reader consumed for its header (the header block, and
// the GNU extension or PAX 1.0 map blocks after it).
func checkSparse(hdr *tar.Header, rec []byte) error {
	var si sparseInfo
	var err error
	if hdr.Typeflag == tar.TypeGNUSparse {
		si, err = oldGNUSparse(rec)
	} else {
		si, err = paxSparse(hdr, rec)
	}
	if err != nil {
		return &EntryError{Entry: hdr.Name, Reason: "sparse map: " + err.Error(), Err: ErrCorrupt}
	}
	if si.data != si.physical {
		return &EntryError{Entry: hdr.Name, Reason: fmt.Sprintf("sparse map describes %d bytes of data, the entry holds %d", si.data, si.physical), Err: ErrCorrupt}
	}
	return nil
}

// parseNumeric reads a tar number field: octal, or base-256 when the
// high bit of its first byte is set.
func parseNumeric(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0] != 0x80 || len(b) < 9 {
			return 0, fmt.Errorf("base-256 number out of range")
		}
		var x int64
		for _, c := range b[len(b)-8:] {
			if x>>55 != 0 {
				return 0, fmt.Errorf("base-256 number out of range")
			}
			x = x<<8 | int64(c)
		}
		if x < 0 {
			return 0, fmt.Errorf("base-256 number out of range")
		}
		return x, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// oldGNUSparse finds, among the last blocks read, the GNU 'S' header and
// its chain of extension blocks ending exactly at the end of rec.
func oldGNUSparse(rec []byte) (sparseInfo, error) {
	n := len(rec) / blockSize
	rec = rec[len(rec)-n*blockSize:]
	for j := n - 1; j >= 0; j-- {
		b := rec[j*blockSize : (j+1)*blockSize]
		if b[156] != tar.TypeGNUSparse || string(b[257:265]) != "ustar  \x00" {
			continue
		}
		if si, end, err := walkGNUSparse(rec, j); err == nil && end == n {
			return si, nil
		}
	}
	return sparseInfo{}, fmt.Errorf("header not found")
}

// walkGNUSparse sums the fragments of the header at block j and its
// extension blocks, and returns the index of the block after them.
func walkGNUSparse(rec []byte, j int) (sparseInfo, int, error) {
	var si sparseInfo
	b := rec[j*blockSize:]
	var err error
	if si.physical, err = parseNumeric(b[124:136]); err != nil {
		return si, 0, err
	}
	entries, count, ext := b[386:482], 4, b[482]
	k := j + 1
	for {
		for i := 0; i < count; i++ {
			e := entries[i*24 : (i+1)*24]
			if e[0] == 0 {
				break
			}
			l, err := parseNumeric(e[12:24])
			if err != nil {
				return si, 0, err
			}
			if si.data += l; si.data < 0 {
				return si, 0, fmt.Errorf("fragment lengths overflow")
			}
		}
		if ext == 0 {
			return si, k, nil
		}
		if (k+1)*blockSize > len(rec) {
			return si, 0, fmt.Errorf("extension block missing")
		}
		b = rec[k*blockSize : (k+1)*blockSize]
		entries, count, ext = b[:504], 21, b[504]
		k++
	}
}

// paxSparse reads the fragments of a PAX sparse entry: from its records
// (formats 0.0 and 0.1) or from the map blocks after its header (1.0).
func paxSparse(hdr *tar.Header, rec []byte) (sparseInfo, error) {
	var si sparseInfo
	n := len(rec) / blockSize
	rec = rec[len(rec)-n*blockSize:]
	// The header is the last block with a ustar magic: map blocks hold
	// digits and newlines only.
	j := -1
	for i := n - 1; i >= 0; i-- {
		if bytes.HasPrefix(rec[i*blockSize+257:], []byte("ustar")) {
			j = i
			break
		}
	}
	if j < 0 {
		return si, fmt.Errorf("header not found")
	}
	total, err := parseNumeric(rec[j*blockSize+124 : j*blockSize+136])
	if err != nil {
		return si, err
	}
	if s := hdr.PAXRecords["size"]; s != "" {
		if total, err = strconv.ParseInt(s, 10, 64); err != nil {
			return si, fmt.Errorf("size record %q", s)
		}
	}
	var nums []string
	if hdr.PAXRecords["GNU.sparse.major"] == "1" {
		mapBlocks := n - 1 - j
		total -= int64(mapBlocks) * blockSize
		nums = strings.Fields(string(bytes.TrimRight(rec[(j+1)*blockSize:], "\x00")))
		if len(nums) == 0 {
			return si, fmt.Errorf("empty map")
		}
		nums = nums[1:] // the count: archive/tar checked it
	} else {
		nums = strings.Split(hdr.PAXRecords["GNU.sparse.map"], ",")
	}
	if len(nums)%2 != 0 {
		return si, fmt.Errorf("odd number of fields")
	}
	for i := 1; i < len(nums); i += 2 {
		l, err := strconv.ParseInt(nums[i], 10, 64)
		if err != nil || l < 0 {
			return si, fmt.Errorf("bad fragment length %q", nums[i])
		}
		if si.data += l; si.data < 0 {
			return si, fmt.Errorf("fragment lengths overflow")
		}
	}
	si.physical = total
	return si, nil
}

// zeroBlock is compared against to find holes.
var zeroBlock = make([]byte, sparseChunk)

// sparseChunk is the granularity of holes made when writing a sparse file.
const sparseChunk = 64 << 10

// copySparse writes a sparse entry's content to f keeping its holes: runs
// of zeros of sparseChunk bytes are skipped by seeking instead of written
// (archive/tar gives the holes as zeros and does not export its map).
func copySparse(f *os.File, r io.Reader, size int64, buf []byte) error {
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		for b := buf[:n]; len(b) > 0; {
			c := min(len(b), sparseChunk)
			if !bytes.Equal(b[:c], zeroBlock[:c]) {
				if _, werr := f.WriteAt(b[:c], off); werr != nil {
					return werr
				}
			}
			off += int64(c)
			b = b[c:]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return fmt.Errorf("sparse file of %d bytes, %d read: %w", size, off, ErrCorrupt)
	}
	return f.Truncate(size)
}
