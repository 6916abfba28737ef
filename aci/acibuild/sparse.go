package acibuild

import "fmt"

// GNUSparseEntry returns the raw blocks of an old-GNU sparse entry ('S',
// what GNU tar --sparse writes) of logical size realSize whose map lists
// frags (offset, length) and whose body holds data; archive/tar cannot
// write these. The map and the data need not agree: tests build broken ones.
func GNUSparseEntry(name string, realSize int64, frags [][2]int64, data []byte) []byte {
	blk := make([]byte, 512)
	octal := func(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o", len(b)-1, v)) }
	copy(blk, name)
	octal(blk[100:108], 0o644)
	octal(blk[108:116], 0)
	octal(blk[116:124], 0)
	octal(blk[124:136], int64(len(data)))
	octal(blk[136:148], DefaultModTime.Unix())
	blk[156] = 'S'
	copy(blk[257:265], "ustar  \x00")
	var ext [][]byte
	for i, f := range frags {
		var e []byte
		if i < 4 {
			e = blk[386+i*24:]
		} else {
			j := (i - 4) / 21
			for len(ext) <= j {
				ext = append(ext, make([]byte, 512))
			}
			e = ext[j][((i-4)%21)*24:]
		}
		octal(e[0:12], f[0])
		octal(e[12:24], f[1])
	}
	if len(ext) > 0 {
		blk[482] = 1
		for j := 0; j < len(ext)-1; j++ {
			ext[j][504] = 1
		}
	}
	octal(blk[483:495], realSize)
	copy(blk[148:156], "        ")
	var sum int64
	for _, c := range blk {
		sum += int64(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := append([]byte{}, blk...)
	for _, e := range ext {
		out = append(out, e...)
	}
	out = append(out, data...)
	if pad := len(data) % 512; pad != 0 {
		out = append(out, make([]byte, 512-pad)...)
	}
	return out
}

// InsertEntry returns the tar img with the raw entry blocks added before
// its end-of-archive marker (the two zero blocks tar.Writer ends with).
func InsertEntry(img, raw []byte) []byte {
	body := img[:len(img)-1024]
	return append(append(append([]byte{}, body...), raw...), make([]byte, 1024)...)
}
