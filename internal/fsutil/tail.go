package fsutil

import (
	"io"
	"os"
	"strings"
)

// Tail returns, trimmed, up to limit bytes of path written after offset start (the last limit
// bytes if more was written): what a child process logged since a point, for error messages.
// A file that cannot be read gives "".
func Tail(path string, start, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	return TailFile(f, start, limit)
}

// TailFile is Tail of a file already open for reading.
func TailFile(f *os.File, start, limit int64) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if st.Size()-start > limit {
		start = st.Size() - limit
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, limit))
	return strings.TrimSpace(string(b))
}
