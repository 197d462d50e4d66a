package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// algCost times n 8 KiB xts(aes) encryptions and decryptions through the
// kernel's crypto API (AF_ALG), each less the same calls through
// ecb(cipher_null), so that what remains is the cipher: the implementation
// fscrypt uses (the highest-priority xts(aes) in /proc/crypto).
func algCost(ctx context.Context, n int) (enc, dec time.Duration, err error) {
	xe, xd, err := algTime(ctx, "xts(aes)", 64, 16, n)
	if err != nil {
		return 0, 0, err
	}
	ne, nd, err := algTime(ctx, "ecb(cipher_null)", 0, 0, n)
	if err != nil {
		return 0, 0, err
	}
	return xe - ne, xd - nd, nil
}

// algTime is the time per 8 KiB operation of the skcipher name. The key is
// a fixed non-secret one: AES's speed does not depend on the key, and no
// data is protected here.
func algTime(ctx context.Context, name string, keyLen, ivLen, n int) (enc, dec time.Duration, err error) {
	fd, err := unix.Socket(unix.AF_ALG, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("AF_ALG socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrALG{Type: "skcipher", Name: name}); err != nil {
		return 0, 0, fmt.Errorf("AF_ALG bind %s: %w", name, err)
	}
	if keyLen > 0 {
		key := make([]byte, keyLen)
		for i := range key {
			key[i] = byte(i + 1) // XTS refuses two equal key halves
		}
		if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_ALG, unix.ALG_SET_KEY,
			uintptr(unsafe.Pointer(&key[0])), uintptr(keyLen), 0); e != 0 {
			return 0, 0, fmt.Errorf("AF_ALG %s set key: %w", name, e)
		}
	}
	op, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return 0, 0, fmt.Errorf("AF_ALG accept %s: %w", name, e)
	}
	defer unix.Close(int(op))
	in, out := make([]byte, page), make([]byte, page)
	for i := range in {
		in[i] = byte(i)
	}
	for _, dir := range []uint32{unix.ALG_OP_ENCRYPT, unix.ALG_OP_DECRYPT} {
		oob := algControl(dir, ivLen)
		t := time.Now()
		for i := 0; i < n; i++ {
			if _, err := unix.SendmsgN(int(op), in, oob, nil, 0); err != nil {
				return 0, 0, fmt.Errorf("AF_ALG %s sendmsg: %w", name, err)
			}
			if _, err := unix.Read(int(op), out); err != nil {
				return 0, 0, fmt.Errorf("AF_ALG %s read: %w", name, err)
			}
		}
		d := time.Since(t) / time.Duration(n)
		if dir == unix.ALG_OP_ENCRYPT {
			enc = d
		} else {
			dec = d
		}
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
	}
	return enc, dec, nil
}

// algControl is the control message of one AF_ALG operation: its direction
// and, for a cipher with an IV, an IV (struct af_alg_iv).
func algControl(dir uint32, ivLen int) []byte {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_ALG, unix.ALG_SET_OP
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], dir)
	if ivLen == 0 {
		return oob
	}
	iv := make([]byte, unix.CmsgSpace(4+ivLen))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&iv[0]))
	h.Level, h.Type = unix.SOL_ALG, unix.ALG_SET_IV
	h.SetLen(unix.CmsgLen(4 + ivLen))
	binary.NativeEndian.PutUint32(iv[unix.CmsgLen(0):], uint32(ivLen))
	return append(oob, iv...)
}

// goGCMCost is the time per 8 KiB of AES-256-GCM sealing in Go (AES-NI and
// carry-less multiply where the CPU has them): what the cipher costs when
// the hardware's AES instructions are used.
func goGCMCost(n int) (time.Duration, error) {
	key := make([]byte, 32)
	b, err := aes.NewCipher(key)
	if err != nil {
		return 0, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return 0, err
	}
	nonce := make([]byte, g.NonceSize())
	in := make([]byte, page)
	out := make([]byte, 0, page+g.Overhead())
	t := time.Now()
	for i := 0; i < n; i++ {
		nonce[0] = byte(i)
		out = g.Seal(out[:0], nonce, in, nil)
	}
	return time.Since(t) / time.Duration(n), nil
}
