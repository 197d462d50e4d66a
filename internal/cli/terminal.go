package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether stream is an *os.File open on a terminal; it asks the tty driver
// (TCGETS) rather than trusting "character device", which /dev/null also is.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok || f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
